export { compileMetered, meteredAdvertisement, meteredTermsFor, METERED_STREAM, type CompiledMetered, type MeteredRouteConfig, type MeteredTerms } from "./terms.ts";
export { createMeteredStream, createTally, MeterError, METERED_HEADERS, type Meter, type MeteredProducer } from "./session.ts";
export { meteredResponse, meteredStream, meteredStreamOf, openMeter, pipeMeteredToNode, settleMeteredWebResponse, type NodeResponseLike } from "./glue.ts";
