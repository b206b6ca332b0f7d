// DOM building without innerHTML: every string becomes a text node or an attribute value, so
// nothing from the server, the wallet or the paid response is ever parsed as markup here.

type Child = Node | string | false | undefined | null;

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string | boolean | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : value);
  }
  for (const c of children) if (c !== false && c !== undefined && c !== null) node.append(c);
  return node;
}

/** Only https: links leave the page (explorers); anything else is shown as text. */
export function externalLink(href: string, text: string): HTMLElement {
  if (!/^https:\/\//i.test(href)) return el("code", {}, text);
  return el("a", { href, target: "_blank", rel: "noopener noreferrer" }, text);
}
