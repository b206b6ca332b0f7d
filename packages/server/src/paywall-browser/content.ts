// Showing what was paid for. Nothing of the response runs in the page: JSON and text are text,
// HTML goes into a sandboxed frame (no scripts, opaque origin) from a blob: URL, images are
// images, anything else is a download.
import { el } from "./dom.ts";

const MAX_INLINE_TEXT = 2 * 1024 * 1024;

export async function renderContent(res: Response, url: string): Promise<HTMLElement> {
  const type = (res.headers.get("content-type") ?? "application/octet-stream").toLowerCase();
  const mime = type.split(";")[0]!.trim();
  const blob = await res.blob();
  const box = el("div", { class: "content" });
  const isJson = mime === "application/json" || mime.endsWith("+json");
  if ((isJson || mime.startsWith("text/")) && mime !== "text/html" && blob.size <= MAX_INLINE_TEXT) {
    let text = await blob.text();
    if (isJson) {
      try {
        text = JSON.stringify(JSON.parse(text), null, 2);
      } catch {
        // shown as it came
      }
    }
    box.append(el("pre", { tabindex: "0", "aria-label": "Paid content" }, text));
  } else if (mime === "text/html") {
    const frame = el("iframe", { sandbox: "", title: "Paid content", referrerpolicy: "no-referrer" });
    frame.src = URL.createObjectURL(new Blob([blob], { type: "text/html" }));
    box.append(frame);
  } else if (/^image\/(png|jpeg|gif|webp|avif)$/.test(mime)) {
    const img = el("img", { alt: "Paid content" });
    img.src = URL.createObjectURL(blob);
    box.append(img);
  }
  box.append(downloadLink(blob, fileName(res, url, mime)));
  return box;
}

function downloadLink(blob: Blob, name: string): HTMLElement {
  const a = el("a", { download: name }, `Download ${name} (${blob.size} bytes)`);
  a.href = URL.createObjectURL(blob);
  return el("p", {}, a);
}

/** From Content-Disposition when it names a file, else the URL's last segment. */
function fileName(res: Response, url: string, mime: string): string {
  const disposition = res.headers.get("content-disposition") ?? "";
  const named = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition)?.[1];
  let name = named;
  if (name) {
    try {
      name = decodeURIComponent(name);
    } catch {
      // keep as sent
    }
  }
  if (!name) name = new URL(url).pathname.split("/").filter(Boolean).pop() ?? "content";
  name = name.replace(/[\\/:*?"<>|\u0000-\u001f]/g, "_").slice(0, 120) || "content";
  if (!name.includes(".")) {
    const ext = mime === "application/json" ? "json" : mime.startsWith("text/") ? (mime === "text/html" ? "html" : "txt") : "";
    if (ext) name += `.${ext}`;
  }
  return name;
}
