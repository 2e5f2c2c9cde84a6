// Makes bqplot 0.13's BrushSelector report what it brushed.
// Why: bqplot reads the brush event through `d3Selection.event || window.event`, but its bundled d3-brush sets
// `event` on another copy of d3-selection, so bqplot gets the browser's native mouse event (no `sourceEvent`,
// no `selection`) and never sets `selected_x` / `selected_y` nor the marks' selection: the rectangle draws and
// selects nothing. While a pointer drag that started on a d3 brush is under way, this shim answers `window.event`
// with the brush event bqplot expects (the native event as `sourceEvent`, the brush's pixel selection from the
// brush node's own state); at any other time `window.event` is untouched. Installed once per page.
function install() {
  if (window.__ipynetvizBrushShim) return;
  const desc = Object.getOwnPropertyDescriptor(window, "event");
  if (!desc || !desc.get || !desc.configurable) return;  // nothing safe to wrap in this browser
  window.__ipynetvizBrushShim = true;
  let brushNode = null;
  const brushOf = (node) => {
    for (let n = node; n; n = n.parentNode) if (n.__brush) return n;
    return null;
  };
  document.addEventListener("mousedown", (e) => { brushNode = brushOf(e.target); }, true);
  document.addEventListener("touchstart", (e) => { brushNode = brushOf(e.target); }, true);
  const release = () => setTimeout(() => { brushNode = null; }, 0);  // after d3's own "end" handlers
  window.addEventListener("mouseup", release, false);
  window.addEventListener("touchend", release, false);
  Object.defineProperty(window, "event", {
    configurable: true,
    get() {
      const native = desc.get.call(window);
      if (!brushNode || !brushNode.__brush || !native) return native;
      const state = brushNode.__brush;
      const selection = state.selection && state.dim ? state.dim.output(state.selection) : state.selection;
      return { type: native.type, sourceEvent: native, selection: selection || null, target: null };
    },
    set(value) { if (desc.set) desc.set.call(window, value); },
  });
}
function render({ el }) {
  install();
  el.style.display = "none";
}
export default { render };
