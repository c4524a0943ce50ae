// AGFNet web app: pick or drop two images, send them to api/predict, show the answer.
// Plain JavaScript, no build step, no external resources. URLs are relative, so the page
// also works when a reverse proxy serves the app under a path prefix.
"use strict";

(function () {
  const FIELDS = ["clinical", "ultrasound"];
  // How the page names each image: the model's names (its config's data.modality_names,
  // e.g. "Dermoscopic image"), rendered into the drop zones by the server, then from api/model.
  const TITLES = {};
  for (const field of FIELDS) {
    TITLES[field] = document.querySelector(`#drop-${field} .drop-title`).textContent.trim();
  }
  const CERTAINTY_WORDS = {
    high: "High",
    moderate: "Moderate",
    low: "Low",
  };
  const CERTAINTY_TEXT = {
    high: "The model is fairly sure of its top class.",
    moderate: "The model favours its top class but other classes remain plausible.",
    low: "The model is unsure: several classes are about as probable.",
  };
  // Until api/model answers: the server's defaults.
  let model = {
    classes: [],
    max_upload_bytes: 20 * 1024 * 1024,
    accepted_suffixes: [".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".dcm", ".dicom"],
    supports_missing: false,
    cam: true,
  };

  const $ = (id) => document.getElementById(id);
  const isOnnx = () => Boolean(model.backend && model.backend.runtime === "onnxruntime");
  const form = $("form");
  const button = $("diagnose");
  const statusLine = $("status");
  const errorBox = $("error");
  const result = $("result");
  const previews = {};  // field -> object URL of its preview, revoked when replaced

  function megabytes(n) {
    if (n < 1024 * 1024) return Math.max(1, Math.round(n / 1024)) + " kB";
    return (n / (1024 * 1024)).toFixed(n < 10 * 1024 * 1024 ? 1 : 0) + " MB";
  }

  // A name inside a sentence: "Dermoscopic image" -> "dermoscopic image" ("MRI scan" stays).
  function inSentence(name) {
    const lower = name.length > 1 && name[0] !== name[0].toLowerCase() &&
      name[1] === name[1].toLowerCase();
    return lower ? name[0].toLowerCase() + name.slice(1) : name;
  }

  function withArticle(name) {
    return (/^[aeiou]/i.test(name) ? "an " : "a ") + name;
  }

  function percent(p) {
    return (100 * p).toFixed(1) + "%";
  }

  function showError(title, message) {
    errorBox.replaceChildren();
    const strong = document.createElement("strong");
    strong.textContent = title;
    errorBox.append(strong, document.createTextNode(message));
    errorBox.hidden = false;
  }

  function clearError() {
    errorBox.hidden = true;
    errorBox.replaceChildren();
    for (const field of FIELDS) $("drop-" + field).classList.remove("invalid");
  }

  function suffixOf(name) {
    const dot = name.lastIndexOf(".");
    return dot < 0 ? "" : name.slice(dot).toLowerCase();
  }

  // Why a chosen file cannot be sent, or "" when it can.
  function fileProblem(file) {
    const suffix = suffixOf(file.name);
    const isImageType = file.type.startsWith("image/") || file.type === "application/dicom";
    if (!model.accepted_suffixes.includes(suffix) && !isImageType) {
      return `\u201c${file.name}\u201d is not an image this app reads. Choose a JPEG, PNG, TIFF, BMP or DICOM file.`;
    }
    if (file.size === 0) {
      return `\u201c${file.name}\u201d is empty (0 bytes). Choose the image again.`;
    }
    if (file.size > model.max_upload_bytes) {
      return `\u201c${file.name}\u201d is ${megabytes(file.size)}; the limit is ${megabytes(model.max_upload_bytes)} per image. Export a smaller image (e.g. a JPEG) and try again.`;
    }
    return "";
  }

  function chosenFile(field) {
    const input = $(field);
    return input.files && input.files.length ? input.files[0] : null;
  }

  function resetPreview(field) {
    const drop = $("drop-" + field);
    const figure = drop.querySelector(".preview");
    if (previews[field]) URL.revokeObjectURL(previews[field]);
    delete previews[field];
    figure.hidden = true;
    figure.querySelector("img").removeAttribute("src");
    drop.querySelector(".remove").hidden = true;
    drop.classList.remove("has-file");
  }

  function updatePreview(field) {
    const file = chosenFile(field);
    resetPreview(field);
    if (!file) return;
    const drop = $("drop-" + field);
    const problem = fileProblem(file);
    if (problem) {
      $(field).value = "";
      drop.classList.add("invalid");
      showError(`${TITLES[field]}: file refused. `, problem);
      return;
    }
    clearError();
    const figure = drop.querySelector(".preview");
    const img = figure.querySelector("img");
    const noPreview = figure.querySelector(".no-preview");
    previews[field] = URL.createObjectURL(file);
    img.hidden = false;
    noPreview.hidden = true;
    img.onerror = () => {
      // TIFF and DICOM: browsers do not display them, the server reads them anyway.
      img.hidden = true;
      noPreview.hidden = false;
      URL.revokeObjectURL(previews[field]);
      delete previews[field];
    };
    img.src = previews[field];
    img.alt = `Preview of the ${inSentence(TITLES[field])}, ${file.name}`;
    figure.querySelector("figcaption").textContent = `${file.name} \u00b7 ${megabytes(file.size)}`;
    figure.hidden = false;
    drop.querySelector(".remove").hidden = false;
    drop.classList.add("has-file");
    statusLine.textContent = "";
  }

  function setBusy(busy) {
    button.setAttribute("aria-busy", busy ? "true" : "false");
    button.querySelector(".label").textContent = busy ? "Diagnosing\u2026" : "Diagnose";
    result.setAttribute("aria-busy", busy ? "true" : "false");
  }

  function renderBars(probabilities, prediction) {
    const list = $("bars");
    list.replaceChildren();
    const classes = model.classes.length ? model.classes : Object.keys(probabilities);
    for (const name of classes) {
      const p = probabilities[name];
      const row = document.createElement("li");
      row.className = "bar-row" + (name === prediction ? " top" : "");
      row.dataset.class = name;
      const label = document.createElement("span");
      label.className = "bar-name";
      label.textContent = name;
      label.title = name;
      const track = document.createElement("span");
      track.className = "bar-track";
      track.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = (100 * p).toFixed(2) + "%";
      track.append(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = percent(p);
      const spoken = document.createElement("span");
      spoken.className = "visually-hidden";
      spoken.textContent = name === prediction ? " (most probable)" : "";
      row.append(label, track, value, spoken);
      list.append(row);
    }
  }

  function imageCard(field, title, cams) {
    const card = document.createElement("article");
    card.className = "cam-card";
    card.dataset.modality = field;
    const heading = document.createElement("h4");
    heading.textContent = title;
    card.append(heading);
    const pair = document.createElement("div");
    pair.className = "cam-pair";
    const figures = [["Uploaded image", previews[field], `The uploaded ${inSentence(title)}`]];
    if (cams && cams[field]) {
      figures.push([
        "Heatmap",
        cams[field],
        `Layer-CAM heatmap over the ${inSentence(title)}: warm colours mark the regions that raised the score of the most probable class`,
      ]);
    }
    for (const [caption, src, alt] of figures) {
      if (!src) continue;
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = src;
      img.alt = alt;
      img.className = caption === "Heatmap" ? "cam-image" : "input-image";
      const figcaption = document.createElement("figcaption");
      figcaption.textContent = caption;
      figure.append(img, figcaption);
      pair.append(figure);
    }
    card.append(pair);
    return card;
  }

  function renderCams(body) {
    const box = $("cams");
    box.replaceChildren();
    const haveCams = body.cams && Object.keys(body.cams).length > 0;
    // Why the server makes no heatmaps (e.g. an ONNX model), rendered into the page.
    const serverNotice = $("cam-unavailable");
    $("cam-note").hidden = !haveCams;
    $("cam-legend").hidden = !haveCams;
    for (const field of FIELDS) {
      if (!body.modalities[field]) {
        if (chosenFile(field)) {
          const note = document.createElement("p");
          note.className = "cam-missing";
          note.textContent = `The model does not use the ${inSentence(TITLES[field])}.`;
          box.append(note);
        }
        continue;
      }
      box.append(imageCard(field, TITLES[field], body.cams));
    }
    if (!haveCams && !serverNotice) {
      const note = document.createElement("p");
      note.className = "cam-missing";
      note.textContent = body.cam_unavailable ||
        "No heatmaps with this result (turned off on this server, or not available for this model).";
      box.prepend(note);
    }
  }

  // The task heads (e.g. the seven criteria), the checklist score, and the metadata
  // the model did not get; each part only when the answer has it.
  function renderTasks(body) {
    const box = $("tasks-box");
    const tasks = body.tasks || {};
    const names = Object.keys(tasks);
    box.hidden = names.length === 0;
    const rows = $("tasks").querySelector("tbody");
    rows.replaceChildren();
    for (const name of names) {
      const task = tasks[name];
      const row = document.createElement("tr");
      row.dataset.task = name;
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = name;
      const top = document.createElement("td");
      top.className = "task-prediction";
      top.textContent = `${task.prediction} (${percent(task.probabilities[task.prediction])})`;
      const all = document.createElement("td");
      all.className = "task-probabilities";
      all.textContent = Object.entries(task.probabilities)
        .map(([c, p]) => `${c} ${percent(p)}`)
        .join(" \u00b7 ");
      row.append(th, top, all);
      rows.append(row);
    }
    const score = $("checklist");
    const hasScore = typeof body.seven_point_score === "number";
    score.hidden = !hasScore;
    if (hasScore) {
      score.textContent = `Seven-point score: ${body.seven_point_score} of 10 \u2014 ` +
        (body.checklist_melanoma
          ? "3 or more: the checklist suspects melanoma."
          : "below 3: the checklist does not suspect melanoma.");
      score.className = "checklist" + (body.checklist_melanoma ? " suspect" : "");
    }
    const note = $("metadata-note");
    const missing = body.metadata_missing;
    note.hidden = !Array.isArray(missing);
    if (Array.isArray(missing)) {
      const parts = [missing.length
        ? `Metadata missing (the model read them as missing): ${missing.join(", ")}.`
        : "Every metadata field the model uses was given."];
      if (body.metadata_unknown && body.metadata_unknown.length) {
        parts.push(`Not seen in training (read as unknown): ${body.metadata_unknown.join(", ")}.`);
      }
      note.textContent = parts.join(" ");
    }
  }

  function renderResult(body) {
    const u = body.uncertainty;
    $("prediction").textContent = body.prediction;
    $("prediction-text").textContent = `probability ${percent(u.max_probability)}`;
    const word = $("certainty-word");
    word.textContent = CERTAINTY_WORDS[u.certainty] || u.certainty;
    word.className = "badge " + u.certainty;
    $("certainty-text").textContent =
      `${CERTAINTY_TEXT[u.certainty] || ""} Top probability ${percent(u.max_probability)}; ` +
      `normalised entropy ${u.normalized_entropy.toFixed(2)} (0 = one class certain, 1 = all equally likely).`;
    renderBars(body.probabilities, body.prediction);
    renderTasks(body);
    renderCams(body);
    const used = FIELDS.filter((f) => body.modalities[f]).map((f) => inSentence(TITLES[f]));
    $("meta").textContent =
      `Model ${body.model.id} \u00b7 images used: ${used.join(" and ")} \u00b7 request ${body.request_id}`;
    result.hidden = false;
    $("result-title").focus();
  }

  async function explainFailure(response) {
    let detail = "";
    let field = null;
    try {
      const body = await response.json();
      if (typeof body.detail === "string") {
        detail = body.detail;
        field = body.field || null;
      } else if (Array.isArray(body.detail)) {
        detail = body.detail.map((d) => d.msg).join("; ");
      }
    } catch (e) {
      detail = response.statusText;
    }
    if (field) $("drop-" + field).classList.add("invalid");
    const where = field ? `${TITLES[field]}: ` : "";
    if (response.status === 413) {
      return [`${where}too large. `, detail];
    }
    if (response.status >= 500) {
      return [
        `The server failed (error ${response.status}). `,
        `${detail || "No detail given."} Try again; if it persists, tell the administrator.`,
      ];
    }
    return [`${where}the server could not use this. `, detail];
  }

  async function diagnose(event) {
    event.preventDefault();
    if (button.getAttribute("aria-busy") === "true") return;
    clearError();
    const given = FIELDS.filter((f) => chosenFile(f));
    const needed = model.supports_missing ? 1 : 2;
    if (given.length < needed) {
      showError(
        "Images missing. ",
        needed === 2
          ? `Choose both images: this model needs ${FIELDS.map((f) => withArticle(inSentence(TITLES[f]))).join(" and ")} of the same lesion.`
          : "Choose at least one image.",
      );
      return;
    }
    const data = new FormData();
    for (const field of given) data.append(field, chosenFile(field));
    for (const input of form.querySelectorAll("[data-metadata]")) {
      if (input.value.trim() !== "") data.append(input.dataset.metadata, input.value.trim());
    }
    setBusy(true);
    statusLine.textContent = "Sending the images and waiting for the model\u2026";
    try {
      const response = await fetch("api/predict", { method: "POST", body: data });
      if (!response.ok) {
        const [title, message] = await explainFailure(response);
        showError(title, message);
        statusLine.textContent = "";
        return;
      }
      const body = await response.json();
      renderResult(body);
      statusLine.textContent = `Done: ${body.prediction}, certainty ${body.uncertainty.certainty}.`;
    } catch (err) {
      showError(
        "Could not reach the server. ",
        "Check the connection (or that the server is still running) and try again.",
      );
      statusLine.textContent = "";
    } finally {
      setBusy(false);
    }
  }

  function clearAll() {
    for (const field of FIELDS) {
      $(field).value = "";
      resetPreview(field);
    }
    for (const input of form.querySelectorAll("[data-metadata]")) input.value = "";
    clearError();
    result.hidden = true;
    statusLine.textContent = "";
    $("clinical").focus();
  }

  function setupDrop(field) {
    const drop = $("drop-" + field);
    const input = $(field);
    input.addEventListener("change", () => updatePreview(field));
    drop.querySelector(".remove").addEventListener("click", () => {
      input.value = "";
      resetPreview(field);
      input.focus();
    });
    drop.addEventListener("dragover", (event) => {
      event.preventDefault();
      drop.classList.add("dragover");
    });
    drop.addEventListener("dragleave", () => drop.classList.remove("dragover"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("dragover");
      const files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length) return;
      const transfer = new DataTransfer();
      transfer.items.add(files[0]);
      input.files = transfer.files;
      updatePreview(field);
    });
  }

  function aboutRow(list, term, value) {
    if (value === null || value === undefined || value === "") return;
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    list.append(dt, dd);
  }

  // What runs the model: "PyTorch (cpu)", "ONNX Runtime, int8 (static QDQ), CPU".
  function describeBackend(backend) {
    if (!backend) return null;
    if (backend.runtime !== "onnxruntime") return `PyTorch (${backend.device}), ${backend.precision}`;
    const q = backend.quantization;
    const how = q ? ` (${q.method}${q.format ? " " + q.format : ""})` : "";
    return `ONNX Runtime, ${backend.precision}${how}, CPU`;
  }

  function describeEvaluation(ev) {
    if (!ev && isOnnx()) return "none stored in an ONNX file (its export check is in the .onnx.json beside it)";
    if (!ev) return "none stored with this checkpoint";
    const calibrated = ev.calibrated || {};
    const parts = [];
    const fmt = (v) => (typeof v === "number" ? v.toFixed(3) : null);
    if (fmt(ev.balanced_accuracy)) parts.push(`balanced accuracy ${fmt(ev.balanced_accuracy)}`);
    if (fmt(ev.macro_auc)) parts.push(`macro AUC ${fmt(ev.macro_auc)}`);
    if (fmt(ev.macro_f1)) parts.push(`macro F1 ${fmt(ev.macro_f1)}`);
    const ece = fmt(calibrated.ece !== undefined ? calibrated.ece : ev.ece);
    if (ece) parts.push(`ECE ${ece}`);
    const split = ev.split ? `${ev.split} set` : "evaluation set";
    const n = ev.n !== undefined ? `, n = ${ev.n}` : "";
    return `${parts.join(", ") || "stored"} (${split}${n}; from ${ev.source})`;
  }

  async function loadModel() {
    const line = $("model-line");
    try {
      const response = await fetch("api/model");
      if (!response.ok) throw new Error(String(response.status));
      model = await response.json();
      Object.assign(TITLES, model.modality_names || {});
    } catch (err) {
      line.textContent = "The model description could not be loaded; predictions may still work.";
      return;
    }
    line.replaceChildren();
    const code = document.createElement("code");
    code.textContent = model.id;
    line.append(
      "Model ",
      code,
      ` \u00b7 ${model.classes.length} classes \u00b7 ${model.img_size} px` +
        (isOnnx() ? ` \u00b7 ONNX Runtime ${model.backend.precision}` : ""),
    );
    for (const field of FIELDS) {
      const needs = model.supports_missing ? "optional" : "required";
      $(field + "-help").textContent =
        `${needs} \u00b7 JPEG, PNG, TIFF, BMP or DICOM, up to ${megabytes(model.max_upload_bytes)}`;
      $(field).required = !model.supports_missing;
    }
    const list = $("about-list");
    list.replaceChildren();
    aboutRow(list, "Model", `${model.model} (${model.id})`);
    aboutRow(list, "Classes", model.classes.join(", "));
    aboutRow(list, "Input size", `${model.img_size} \u00d7 ${model.img_size} pixels`);
    aboutRow(list, "Temperature", model.temperature.toFixed(3));
    aboutRow(list, "Missing image", model.supports_missing
      ? "accepted (trained with modality dropout)"
      : "not accepted: both images are needed");
    aboutRow(list, "Runtime", describeBackend(model.backend));
    aboutRow(list, "Heatmaps", model.cam ? `on (${model.cam_method})` : (model.cam_unavailable || "off"));
    if (model.tasks) {
      aboutRow(list, "Criteria", Object.entries(model.tasks)
        .map(([name, classes]) => `${name} (${classes.join(", ")})`).join("; "));
      aboutRow(list, "Seven-point checklist", model.seven_point_checklist ? "scored" : "not these tasks");
    }
    if (model.metadata) {
      aboutRow(list, "Metadata", model.metadata.map((f) => `${f.name} (${f.kind})`).join(", "));
    }
    aboutRow(list, "Evaluation", describeEvaluation(model.evaluation));
    aboutRow(list, isOnnx() ? "ONNX file" : "Checkpoint", `${model.source} \u00b7 SHA-256 ${model.checkpoint_sha256 || "unknown"}`);
  }

  // A file dropped outside a drop zone would make the browser leave the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  FIELDS.forEach(setupDrop);
  form.addEventListener("submit", diagnose);
  $("clear").addEventListener("click", clearAll);
  loadModel();
})();
