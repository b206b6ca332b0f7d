export {
  createPaywall,
  EXPOSED_HEADERS,
  type Decision,
  type Payment,
  type PaywallConfig,
  type Paywall,
  type PaywallRequest,
  type Proceed,
  type Respond,
  type SettledEvent,
} from "./paywall.ts";
export { PaywallConfigError, parseRouteKey, type PaymentOption, type RouteConfig, type RouteResource } from "./routes.ts";
export { escapeHtml, renderPaywallPage, type PaywallPageOptions } from "./paywall-page.ts";
export { mergeHeaderValue } from "./headers.ts";
