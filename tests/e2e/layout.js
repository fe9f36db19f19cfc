/* Layout checks run in the page by tests/e2e/test_visual.py. Returns a list of problems as text:
   - overflow: an element sticks out of its parent, and the parent neither clips nor scrolls it
     (a table scrolling inside its card is fine; a file path running past the card's border is not);
   - page: the page itself scrolls sideways;
   - overlap: two pieces of text cover each other (HTML text and the charts' SVG text: legends, axis
     titles, tick labels). */
() => {
  const TOL = 1.5;
  const problems = [];
  const vw = document.documentElement.clientWidth;
  if (document.documentElement.scrollWidth > vw + 1) {
    problems.push(`page: scrolls sideways (${document.documentElement.scrollWidth} px wide at ${vw} px)`);
  }
  const describe = (el) => {
    let text = el.tagName.toLowerCase();
    if (el.id) text += "#" + el.id;
    const cls = typeof el.className === "string" ? el.className.trim().split(/\s+/).slice(0, 2).join(".") : "";
    if (cls) text += "." + cls;
    const words = (el.textContent || "").trim().replace(/\s+/g, " ").slice(0, 40);
    return words ? `${text} "${words}"` : text;
  };
  const visible = (el) => {
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") return false;
    const rect = el.getBoundingClientRect();
    return rect.width > 1 && rect.height > 1;
  };
  const hiddenOnPurpose = (el) => el.closest(".visually-hidden, .skip, [hidden], dialog:not([open]), svg, .js-plotly-plot .modebar-container");
  /* The content of a closed <details> is laid out (Chrome hides it with content-visibility), but not drawn. */
  const undrawn = (el) => { const d = el.closest("details:not([open])"); return d && !el.closest("summary"); };
  const clips = (style) => style.overflowX !== "visible" || style.overflowY !== "visible";
  for (const el of document.body.querySelectorAll("*")) {
    if (hiddenOnPurpose(el) && !(el.tagName.toLowerCase() === "svg" && !el.parentElement.closest("svg"))) continue;
    if (!visible(el) || undrawn(el)) continue;
    const style = getComputedStyle(el);
    if (style.position === "fixed" || style.position === "absolute") continue;
    const parent = el.parentElement;
    if (!parent || parent === document.body || parent === document.documentElement) continue;
    const parentStyle = getComputedStyle(parent);
    if (clips(parentStyle) || parentStyle.display === "inline" || parentStyle.display === "contents") continue;
    const r = el.getBoundingClientRect();
    const p = parent.getBoundingClientRect();
    if (r.right > p.right + TOL || r.left < p.left - TOL) {
      problems.push(`overflow: ${describe(el)} sticks out of ${describe(parent)} by ${Math.round(Math.max(r.right - p.right, p.left - r.left))} px`);
    }
  }
  /* Text boxes: one per line of each HTML text node, and each SVG text element. */
  const boxes = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.textContent.trim() ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT),
  });
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const el = node.parentElement;
    if (!el || el.closest("svg, script, style, template, option, select, textarea, .visually-hidden, .skip, dialog:not([open])")) continue;
    if (!visible(el) || undrawn(el)) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const rect of range.getClientRects()) {
      if (rect.width > 1 && rect.height > 1) boxes.push({ rect, el, text: node.textContent.trim().slice(0, 30) });
    }
  }
  for (const text of document.querySelectorAll("svg text")) {
    if (!text.textContent.trim() || text.closest(".hoverlayer, [style*='display: none']")) continue;
    const rect = text.getBoundingClientRect();
    if (rect.width > 1 && rect.height > 1) boxes.push({ rect, el: text, text: text.textContent.trim().slice(0, 30) });
  }
  /* Glyph boxes include the line's leading: shrink them a little so touching lines are not an overlap. */
  const shrink = (r) => ({ left: r.left + 1, right: r.right - 1, top: r.top + r.height * 0.2, bottom: r.bottom - r.height * 0.2 });
  /* What of a text box is drawn: cut by every ancestor (itself included) that clips or scrolls, so text cut
     off by an ellipsis or scrolled out of a container counts only where it shows. */
  const drawn = (el, r) => {
    let box = { left: r.left, right: r.right, top: r.top, bottom: r.bottom };
    for (let a = el; a && a !== document.body; a = a.parentElement) {
      if (a instanceof SVGElement && a.tagName.toLowerCase() !== "svg") continue;
      if (clips(getComputedStyle(a))) {
        const c = a.getBoundingClientRect();
        box = { left: Math.max(box.left, c.left), right: Math.min(box.right, c.right),
                top: Math.max(box.top, c.top), bottom: Math.min(box.bottom, c.bottom) };
      }
    }
    return box.right - box.left > 1 && box.bottom - box.top > 1 ? { ...box, height: box.bottom - box.top } : null;
  };
  const shown = [];
  for (const b of boxes) {
    const rect = drawn(b.el, b.rect);
    if (rect) shown.push({ ...b, rect });
  }
  for (let i = 0; i < shown.length; i++) {
    const a = shrink(shown[i].rect);
    for (let j = i + 1; j < shown.length; j++) {
      if (shown[i].el === shown[j].el) continue;
      if (shown[i].el.contains(shown[j].el) || shown[j].el.contains(shown[i].el)) continue;
      const b = shrink(shown[j].rect);
      const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
      const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
      if (w > 1 && h > 1) {
        problems.push(`overlap: "${shown[i].text}" (${describe(shown[i].el)}) and "${shown[j].text}" (${describe(shown[j].el)})`);
      }
    }
  }
  return problems.slice(0, 25);
}
