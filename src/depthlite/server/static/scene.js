// depthlite web UI: a generated landscape, for trying the page without an image at hand.

export function sampleScene() {
  const w = 960;
  const h = 600;
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const horizon = h * 0.56;

  const sky = ctx.createLinearGradient(0, 0, 0, horizon);
  sky.addColorStop(0, "#7fa7d9");
  sky.addColorStop(1, "#f4d7b5");
  ctx.fillStyle = sky;
  ctx.fillRect(0, 0, w, horizon);
  ctx.fillStyle = "#fff3d6";
  ctx.beginPath();
  ctx.arc(w * 0.74, horizon * 0.42, 38, 0, Math.PI * 2);
  ctx.fill();

  const ridges = [
    ["#a7b3c9", 0.78, 40, 0.004],
    ["#7c8aa6", 0.86, 55, 0.007],
    ["#55627d", 0.94, 45, 0.011],
  ];
  for (const [color, base, amp, freq] of ridges) {
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.moveTo(0, horizon);
    for (let x = 0; x <= w; x += 8) {
      const y = horizon * base - amp * (Math.sin(x * freq) + 0.5 * Math.sin(x * freq * 2.7 + 1));
      ctx.lineTo(x, y);
    }
    ctx.lineTo(w, horizon);
    ctx.closePath();
    ctx.fill();
  }

  const ground = ctx.createLinearGradient(0, horizon, 0, h);
  ground.addColorStop(0, "#8aa26b");
  ground.addColorStop(1, "#3f5a2c");
  ctx.fillStyle = ground;
  ctx.fillRect(0, horizon, w, h - horizon);
  ctx.strokeStyle = "rgb(255 255 255 / 18%)";
  ctx.lineWidth = 1.5;
  for (let i = -12; i <= 12; i += 1) {
    ctx.beginPath();
    ctx.moveTo(w / 2 + i * 8, horizon);
    ctx.lineTo(w / 2 + i * 160, h);
    ctx.stroke();
  }
  for (let k = 1; k < 9; k += 1) {
    const y = horizon + (h - horizon) * (k / 9) ** 2;
    ctx.beginPath();
    ctx.moveTo(0, y);
    ctx.lineTo(w, y);
    ctx.stroke();
  }

  const spheres = [
    [w * 0.3, h * 0.82, 92, "#d9573b"],
    [w * 0.62, h * 0.7, 54, "#3b7dd9"],
    [w * 0.8, h * 0.63, 30, "#e7b53c"],
  ];
  for (const [x, y, r, color] of spheres) {
    ctx.fillStyle = "rgb(0 0 0 / 22%)";
    ctx.beginPath();
    ctx.ellipse(x + r * 0.2, y + r * 0.92, r * 0.95, r * 0.22, 0, 0, Math.PI * 2);
    ctx.fill();
    const g = ctx.createRadialGradient(x - r * 0.35, y - r * 0.4, r * 0.1, x, y, r);
    g.addColorStop(0, "#ffffff");
    g.addColorStop(0.25, color);
    g.addColorStop(1, "#1b1b24");
    ctx.fillStyle = g;
    ctx.beginPath();
    ctx.arc(x, y, r, 0, Math.PI * 2);
    ctx.fill();
  }
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}
