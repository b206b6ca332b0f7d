export { redactRpcUrl, rpcTransport, rpcTransportForUrl, type RpcTransportOptions } from "./transport.ts";
