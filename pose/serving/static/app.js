// The pose server's page: a photo (POST /v1/pose) or the webcam (WS /v1/stream), skeletons
// drawn on a canvas in the colours of pose.visualization. Loads nothing from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
// What the page did, for a reader of the console (and the browser tests).
const state = {
  model: null,
  photo: null,
  stream: {frames: 0, ids: [], people: [], fps: 0, latency: 0, errors: [], size: null},
};
window.poseDemo = state;

const modelReady = fetch("/v1/model").then((r) => r.json()).then((model) => {
  state.model = model;
  const [w, h] = model.input_size;
  $("model").textContent = `${model.model_file}: ${w}×${h} input, ` +
    `${model.runtime_description || model.runtime}; person boxes: ${model.detector}`;
  return model;
}).catch((err) => {
  $("model").textContent = `cannot read /v1/model: ${err}`;
  $("model").className = "error";
});

function rgb(c) { return `rgb(${c[0]}, ${c[1]}, ${c[2]})`; }

// pose.visualization.track_color: hues a golden-ratio step apart (HSV, s 0.9, v 1).
function trackColor(id) {
  const h = (id * 0.6180339887) % 1, s = 0.9, v = 1;
  const i = Math.floor(h * 6), f = h * 6 - i;
  const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

// Boxes and limbs first, then every joint on top (a filled dot in its side's colour over a
// dark halo), so that the pixel at a keypoint is its joint's colour.
function drawPeople(ctx, people, model) {
  const size = Math.sqrt(ctx.canvas.width * ctx.canvas.height);
  const line = Math.max(2, Math.round(size / 250));
  const radius = line + 2;
  const shown = people.filter((p) => p.box_score >= model.threshold_box);
  const visible = (kp) => kp && kp[0] !== null && kp[1] !== null && kp[2] !== null &&
    kp[2] > model.threshold;
  ctx.lineCap = "round";
  for (const person of shown) {
    const own = person.track_id === undefined ? null : trackColor(person.track_id);
    const [x, y, w, h] = person.box;
    ctx.lineWidth = Math.max(1, line / 2);
    ctx.strokeStyle = own ? rgb(own) : "#fff";
    ctx.strokeRect(x, y, w, h);
    const label = (own ? `#${person.track_id} ` : "") + person.box_score.toFixed(2);
    ctx.font = `${Math.max(11, Math.round(size / 40))}px sans-serif`;
    const tw = ctx.measureText(label).width;
    ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
    ctx.fillRect(x, Math.max(0, y - 16), tw + 6, 16);
    ctx.fillStyle = own ? rgb(own) : "#fff";
    ctx.fillText(label, x + 3, Math.max(12, y - 4));
    model.skeleton.forEach(([a, b], i) => {
      const pa = person.keypoints[a], pb = person.keypoints[b];
      if (!visible(pa) || !visible(pb)) return;
      for (const [width, color] of [[line + 2, "#000"],
        [line, rgb(own || model.side_colors[model.limb_sides[i]])]]) {
        ctx.lineWidth = width;
        ctx.strokeStyle = color;
        ctx.beginPath();
        ctx.moveTo(pa[0], pa[1]);
        ctx.lineTo(pb[0], pb[1]);
        ctx.stroke();
      }
    });
  }
  for (const person of shown) {
    person.keypoints.forEach((kp, k) => {
      if (!visible(kp)) return;
      for (const [r, color] of [[radius + 1, "#000"],
        [radius, rgb(model.side_colors[model.keypoint_sides[k]])]]) {
        ctx.fillStyle = color;
        ctx.beginPath();
        ctx.arc(kp[0], kp[1], r, 0, 2 * Math.PI);
        ctx.fill();
      }
    });
  }
}

function drawing(model) {
  return {...model, threshold_box: model.box_threshold};
}

// ------------------------------------------------------------------ photo mode
async function showPhoto(file) {
  const status = $("photo-status");
  status.className = "";
  status.textContent = `estimating ${file.name}…`;
  document.body.dataset.photo = "busy";
  const model = await modelReady;
  const start = performance.now();
  let answer;
  try {
    const response = await fetch("/v1/pose", {
      method: "POST", body: file,
      headers: {"Content-Type": file.type || "application/octet-stream"},
    });
    answer = await response.json();
    if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
  } catch (err) {
    status.className = "error";
    status.textContent = `${file.name}: ${err.message}`;
    document.body.dataset.photo = "error";
    return;
  }
  const ms = performance.now() - start;
  // Upright by the photo's EXIF orientation, as the server reads it.
  const bitmap = await createImageBitmap(file, {imageOrientation: "from-image"});
  const canvas = $("photo-canvas");
  canvas.width = answer.image.width;
  canvas.height = answer.image.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  drawPeople(ctx, answer.people, drawing(model));
  const list = $("people");
  list.replaceChildren(...answer.people.map((p) => {
    const item = document.createElement("li");
    item.textContent = `score ${p.score.toFixed(3)}, box ${p.box.map((v) => v.toFixed(0))
      .join(", ")} (box score ${p.box_score.toFixed(2)})`;
    return item;
  }));
  status.textContent = `${file.name}: ${answer.people.length} ` +
    `${answer.people.length === 1 ? "person" : "people"} in ${ms.toFixed(0)} ms ` +
    `(${answer.image.width}×${answer.image.height})`;
  state.photo = answer;
  document.body.dataset.photo = "done";
}

$("file").addEventListener("change", (event) => {
  if (event.target.files.length) showPhoto(event.target.files[0]);
});
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) showPhoto(event.dataTransfer.files[0]);
});

// ------------------------------------------------------------------ webcam mode
// One frame in flight: a frame is sent, its answer drawn over it, then the next is sent.
// A message is an 8-byte little-endian float64 capture time (ms) and the frame's JPEG.
let webcam = null;

async function startWebcam() {
  const model = await modelReady;
  const [w, h] = $("size").value.split("x").map(Number);
  const status = $("webcam-status");
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia(
      {video: {width: {ideal: w}, height: {ideal: h}}, audio: false});
  } catch (err) {
    status.className = "error";
    status.textContent = `no camera: ${err.message}`;
    return;
  }
  const video = $("video");
  video.srcObject = media;
  await video.play();
  const grab = document.createElement("canvas");
  grab.width = w;
  grab.height = h;
  const view = $("webcam-canvas");
  view.width = w;
  view.height = h;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/v1/stream`);
  socket.binaryType = "arraybuffer";
  webcam = {media, socket, grab, running: true, sentAt: 0, answered: []};
  state.stream = {frames: 0, ids: [], people: [], fps: 0, latency: 0, errors: [], size: [w, h]};
  $("start").disabled = true;
  $("stop").disabled = false;
  status.className = "";

  const send = () => {
    if (!webcam || !webcam.running || socket.readyState !== WebSocket.OPEN) return;
    grab.getContext("2d").drawImage(video, 0, 0, w, h);
    const captured = performance.now();
    grab.toBlob(async (blob) => {
      if (!webcam || !webcam.running) return;
      const jpeg = new Uint8Array(await blob.arrayBuffer());
      const message = new Uint8Array(8 + jpeg.length);
      new DataView(message.buffer).setFloat64(0, captured, true);
      message.set(jpeg, 8);
      webcam.sentAt = performance.now();
      socket.send(message);
    }, "image/jpeg", 0.85);
  };
  socket.onopen = send;
  socket.onmessage = (event) => {
    if (!webcam || webcam.socket !== socket) return;  // stopped: draw nothing more
    const answer = JSON.parse(event.data);
    if (answer.stream !== undefined) return;  // the greeting
    if (answer.error) {
      state.stream.errors.push(answer.error);
      status.textContent = answer.error;
      setTimeout(send, answer.busy ? 1000 * (answer.retry_after || 1) : 0);
      return;
    }
    const now = performance.now();
    state.stream.latency = now - webcam.sentAt;
    webcam.answered.push(now);
    if (webcam.answered.length > 10) webcam.answered.shift();
    const n = webcam.answered.length;
    state.stream.fps = n > 1 ? 1000 * (n - 1) / (webcam.answered[n - 1] - webcam.answered[0]) : 0;
    const ctx = view.getContext("2d");
    ctx.drawImage(grab, 0, 0);
    drawPeople(ctx, answer.people, drawing(model));
    state.stream.frames += 1;
    state.stream.ids.push(answer.people.map((p) => p.track_id));
    state.stream.people = answer.people;
    status.textContent = `fps ${state.stream.fps.toFixed(1)} · latency ` +
      `${state.stream.latency.toFixed(0)} ms · ${answer.people.length} ` +
      `${answer.people.length === 1 ? "person" : "people"}` +
      (answer.people.length ? ` (ids ${answer.people.map((p) => "#" + p.track_id).join(" ")})` : "");
    send();
  };
  socket.onclose = () => stopWebcam();
}

function stopWebcam() {
  if (!webcam) return;
  webcam.running = false;
  webcam.media.getTracks().forEach((track) => track.stop());
  if (webcam.socket.readyState <= WebSocket.OPEN) webcam.socket.close();
  webcam = null;
  $("start").disabled = false;
  $("stop").disabled = true;
}

$("start").addEventListener("click", startWebcam);
$("stop").addEventListener("click", stopWebcam);
window.addEventListener("pagehide", stopWebcam);

// ------------------------------------------------------------------ tabs
for (const [tab, section] of [["photo-tab", "photo-mode"], ["webcam-tab", "webcam-mode"]]) {
  $(tab).addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((t) => t.classList.remove("active"));
    $(tab).classList.add("active");
    $("photo-mode").hidden = section !== "photo-mode";
    $("webcam-mode").hidden = section !== "webcam-mode";
    if (section !== "webcam-mode") stopWebcam();
  });
}
