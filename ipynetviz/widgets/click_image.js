// One <img> that reports clicks in image pixels and outlines a selected tile or box.
// Synced traits: src (data URL), scale (display zoom), click ({x, y, n}), tiles (tile layout or null),
// selected (tile index, -1 for none), box ([top, left, bottom, right] in image pixels, or []).
function render({ model, el }) {
  const wrap = document.createElement("div");
  wrap.style.position = "relative";
  wrap.style.display = "inline-block";
  wrap.style.lineHeight = "0";
  const img = document.createElement("img");
  img.style.imageRendering = "pixelated";
  img.style.cursor = "crosshair";
  img.draggable = false;
  const mark = document.createElement("div");
  mark.style.position = "absolute";
  mark.style.border = "2px solid #ff2d55";
  mark.style.pointerEvents = "none";
  mark.style.display = "none";
  mark.className = "ipynetviz-mark";
  wrap.appendChild(img);
  wrap.appendChild(mark);
  el.appendChild(wrap);
  let clicks = 0;

  function draw() {
    img.src = model.get("src") || "";
    img.setAttribute("data-version", String(model.get("version")));
    const s = model.get("scale") || 1;
    img.onload = () => {
      img.style.width = img.naturalWidth * s + "px";
      img.style.height = img.naturalHeight * s + "px";
      outline();
    };
    if (img.complete && img.naturalWidth) {
      img.style.width = img.naturalWidth * s + "px";
      img.style.height = img.naturalHeight * s + "px";
    }
    outline();
  }
  function outline() {
    const s = model.get("scale") || 1;
    const lay = model.get("tiles");
    const sel = model.get("selected");
    const box = model.get("box") || [];
    let r = null;
    if (lay && sel !== null && sel >= 0 && sel < lay.n) {
      const row = Math.floor(sel / lay.ncols), col = sel % lay.ncols;
      const y = lay.pad + row * (lay.tile_h + lay.pad), x = lay.pad + col * (lay.tile_w + lay.pad);
      r = [y, x, y + lay.tile_h, x + lay.tile_w];
    } else if (box.length === 4) {
      r = box;
    }
    if (!r) { mark.style.display = "none"; return; }
    mark.style.display = "block";
    mark.style.top = (r[0] * s - 2) + "px";
    mark.style.left = (r[1] * s - 2) + "px";
    mark.style.width = ((r[3] - r[1]) * s) + "px";
    mark.style.height = ((r[2] - r[0]) * s) + "px";
  }
  img.addEventListener("click", (e) => {
    const rect = img.getBoundingClientRect();
    const x = (e.clientX - rect.left) / rect.width * img.naturalWidth;
    const y = (e.clientY - rect.top) / rect.height * img.naturalHeight;
    clicks += 1;
    model.set("click", { x: x, y: y, n: clicks, t: Date.now() });
    model.save_changes();
  });
  model.on("change:src", draw);
  model.on("change:version", () => img.setAttribute("data-version", String(model.get("version"))));
  model.on("change:scale", draw);
  model.on("change:tiles", outline);
  model.on("change:selected", outline);
  model.on("change:box", outline);
  draw();
}
export default { render };
