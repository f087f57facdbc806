// DOM helpers every page uses: find by id, build elements (text is never parsed as HTML), and
// keyed list updates that keep focus and in-progress edits alive.

export const $ = (id) => document.getElementById(id);

export const show = (el, on) => { el.hidden = !on; };

// h("button", {class: "x", onclick: f}, "text", child…): an element; text is never HTML.
export function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of kids.flat()) if (c != null && c !== false) el.append(c.nodeType ? c : String(c));
  return el;
}

// Keyed update of a list: elements are rebuilt only when their version string changes, so
// focus and in-progress edits survive live events.
export function sync(list, items, keyOf, versionOf, build) {
  const old = new Map([...list.children].map((el) => [el.dataset.key, el]));
  items.forEach((it, i) => {
    const key = String(keyOf(it));
    const ver = versionOf(it);
    let el = old.get(key);
    if (!el || el.dataset.ver !== ver) {
      const fresh = build(it);
      fresh.dataset.key = key;
      fresh.dataset.ver = ver;
      if (el) el.replaceWith(fresh);
      el = fresh;
    }
    old.delete(key);
    if (list.children[i] !== el) list.insertBefore(el, list.children[i] || null);
  });
  for (const el of old.values()) el.remove();
}
