// TrapAlert console: one small script, no framework, no inline script (the CSP forbids it).
// Every change is a fetch with the double-submit CSRF token (meta csrf-token = the ta_csrf cookie) and the
// browser's Origin; every value from the server goes into the page with textContent, never innerHTML.
(function () {
  "use strict";
  var base = document.querySelector('meta[name="console-base"]').content;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var page = document.body.getAttribute("data-page");
  var message = document.getElementById("message");
  function say(text) { if (message) { message.textContent = text; } }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function api(method, path, body, extraHeaders) {
    var headers = { "X-CSRF-Token": csrf };
    if (body !== undefined && !(body instanceof Blob)) { headers["Content-Type"] = "application/json"; }
    Object.keys(extraHeaders || {}).forEach(function (k) { headers[k] = extraHeaders[k]; });
    return fetch(base + "/" + path, {
      method: method, headers: headers, credentials: "same-origin", cache: "no-store",
      body: body === undefined ? undefined : (body instanceof Blob ? body : JSON.stringify(body))
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) { throw new Error(data.error || data.message || ("HTTP " + r.status)); }
        return data;
      });
    });
  }
  function when(iso) { return iso ? String(iso).replace("T", " ").slice(0, 19) + " UTC" : "never"; }
  function on(selector, event, fn) {
    document.querySelectorAll(selector).forEach(function (node) { node.addEventListener(event, fn); });
  }

  var signout = document.getElementById("signout");
  if (signout) {
    signout.addEventListener("click", function () {
      api("POST", "logout", {}).then(function () { location.href = base + "/map"; });
    });
  }

  // ---- sign-in: the one-time token travels in the URL fragment (never sent to a server or logged)
  if (page === "login") {
    var token = new URLSearchParams(location.hash.slice(1)).get("t") || "";
    history.replaceState(null, "", location.pathname);
    var state = document.getElementById("login-state");
    api("POST", "login", { token: token }).then(function (who) {
      state.textContent = "Signed in as " + who.user + " (" + who.role + ").";
      location.replace(base + "/map");
    }).catch(function (err) { state.textContent = err.message; });
  }

  // ---- map: cameras drawn in SVG (Web Mercator); tiles underneath only when configured and reachable
  function mercator(lat, lon) {
    var s = Math.sin(lat * Math.PI / 180);
    return [(lon + 180) / 360, 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)];
  }
  function drawMap(data) {
    var svg = document.getElementById("map-svg");
    var ns = "http://www.w3.org/2000/svg";
    var W = 1000, H = 700, pad = 60;
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    var placed = data.cameras.filter(function (c) { return c.latitude !== null && c.longitude !== null; });
    var pts = placed.map(function (c) { return mercator(c.latitude, c.longitude); });
    Object.keys(data.outlines || {}).forEach(function (k) {
      (data.outlines[k] || []).forEach(function (p) { pts.push(mercator(p[0], p[1])); });
    });
    if (!pts.length) { svg.appendChild(svgText(ns, 20, 40, "No camera has a position yet.")); return; }
    var minX = Math.min.apply(null, pts.map(function (p) { return p[0]; }));
    var maxX = Math.max.apply(null, pts.map(function (p) { return p[0]; }));
    var minY = Math.min.apply(null, pts.map(function (p) { return p[1]; }));
    var maxY = Math.max.apply(null, pts.map(function (p) { return p[1]; }));
    var span = Math.max(maxX - minX, (maxY - minY) * W / H, 1e-6);
    var scale = (W - 2 * pad) / span;
    var cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
    function xy(p) { return [W / 2 + (p[0] - cx) * scale, H / 2 + (p[1] - cy) * scale]; }
    var tiles = document.getElementById("map").getAttribute("data-tiles");
    if (tiles) {
      var z = Math.max(0, Math.min(18, Math.floor(Math.log2(scale / 256))));
      var n = Math.pow(2, z), size = scale / n;
      var x0 = Math.floor((cx - W / 2 / scale) * n), x1 = Math.floor((cx + W / 2 / scale) * n);
      var y0 = Math.floor((cy - H / 2 / scale) * n), y1 = Math.floor((cy + H / 2 / scale) * n);
      for (var tx = x0; tx <= x1 && x1 - x0 < 12; tx++) {
        for (var ty = y0; ty <= y1 && y1 - y0 < 12; ty++) {
          if (ty < 0 || ty >= n) { continue; }
          var img = document.createElementNS(ns, "image");
          var at = xy([tx / n, ty / n]);
          img.setAttribute("x", at[0]); img.setAttribute("y", at[1]);
          img.setAttribute("width", size + 0.5); img.setAttribute("height", size + 0.5);
          img.setAttribute("href", tiles.replace("{z}", z).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty)
                                        .replace("{s}", "a"));
          img.addEventListener("error", function (ev) { ev.target.remove(); });
          svg.appendChild(img);
        }
      }
    }
    var outlines = Object.keys(data.outlines || {}).filter(function (k) { return (data.outlines[k] || []).length > 2; });
    if (outlines.length) {
      outlines.forEach(function (k) {
        var poly = document.createElementNS(ns, "polygon");
        poly.setAttribute("class", "outline");
        poly.setAttribute("points", data.outlines[k].map(function (p) { return xy(mercator(p[0], p[1])).join(","); }).join(" "));
        svg.appendChild(poly);
      });
    } else {  // no outline configured: the cameras' extent, dashed
      var a = xy([minX, minY]), b = xy([maxX, maxY]);
      var rect = document.createElementNS(ns, "rect");
      rect.setAttribute("class", "outline");
      rect.setAttribute("x", a[0] - 30); rect.setAttribute("y", a[1] - 30);
      rect.setAttribute("width", b[0] - a[0] + 60); rect.setAttribute("height", b[1] - a[1] + 60);
      rect.setAttribute("rx", 24);
      svg.appendChild(rect);
    }
    var win = document.getElementById("window").value;
    var r = placed.length > 150 ? 5 : (placed.length > 40 ? 7 : 10);
    var rank = { ok: 0, low_battery: 1, silent: 2, tamper: 3 };  // problems drawn last, on top
    placed.slice().sort(function (a, b) { return rank[a.health] - rank[b.health]; }).forEach(function (c) {
      var p = xy(mercator(c.latitude, c.longitude));
      var count = win === "24h" ? c.alerts_24h : c.alerts_7d;
      var g = document.createElementNS(ns, "g");
      g.setAttribute("data-camera", c.id);
      g.setAttribute("class", "cam");
      if (count > 0) {
        var ring = document.createElementNS(ns, "circle");
        ring.setAttribute("class", "alert-ring");
        ring.setAttribute("cx", p[0]); ring.setAttribute("cy", p[1]);
        ring.setAttribute("r", r + 4 + Math.min(r + 6, 2 * Math.sqrt(count)));
        g.appendChild(ring);
      }
      var dot = document.createElementNS(ns, "circle");
      dot.setAttribute("class", "marker h-" + c.health);
      dot.setAttribute("cx", p[0]); dot.setAttribute("cy", p[1]); dot.setAttribute("r", r);
      var title = document.createElementNS(ns, "title");
      title.textContent = c.name + " (" + c.health + "), " + count + " alerts";
      dot.appendChild(title);
      g.appendChild(dot);
      if (placed.length <= 60) { g.appendChild(svgText(ns, p[0] + r + 3, p[1] + 4, c.name, "marker-label")); }
      g.addEventListener("click", function () { showCamera(c, count); });
      svg.appendChild(g);
    });
  }
  function svgText(ns, x, y, text, cls) {
    var t = document.createElementNS(ns, "text");
    t.setAttribute("x", x); t.setAttribute("y", y);
    if (cls) { t.setAttribute("class", cls); }
    t.textContent = text;
    return t;
  }
  function showCamera(c, count) {
    var card = document.getElementById("camera-card");
    card.hidden = false;
    while (card.firstChild) { card.removeChild(card.firstChild); }
    card.appendChild(el("h3", {}, c.park + " / " + c.name));
    card.appendChild(el("p", {}, "Health: " + c.health + (c.conditions.length ? " (" + c.conditions.join(", ") + ")" : "") +
                        " · last seen " + when(c.last_seen_at) + " · " + count + " alerts"));
    if (c.last_image_id) {
      card.appendChild(el("img", { alt: "last photo of " + c.name, src: base + "/data/images/" + c.last_image_id + "/thumbnail" }));
    }
    var link = el("a", { href: base + "/alerts?camera=" + c.id }, "Alerts of this camera");
    card.appendChild(el("p", {})).appendChild(link);
  }
  if (page === "map") {
    var mapData = null;
    var load = function () {
      return api("GET", "data/map").then(function (d) { mapData = d; drawMap(d); })
        .catch(function (err) { say("Map: " + err.message); });
    };
    load();
    document.getElementById("window").addEventListener("change", function () { if (mapData) { drawMap(mapData); } });
    setInterval(load, 30000);
  }

  // ---- alerts feed: new alerts appear while the page is open (polling with ETag)
  function alertItem(a) {
    var li = el("li", { "class": "alert-item new", "data-alert": a.id });
    var link = el("a", { href: base + "/alerts/" + a.id });
    if (a.best_image_id) {
      link.appendChild(el("img", { alt: "", width: 120, height: 90, src: base + "/data/images/" + a.best_image_id + "/thumbnail" }));
    }
    link.appendChild(el("span", { "class": "title" }, a.title || ("Alert " + a.id)));
    li.appendChild(link);
    var meta = el("span", { "class": "meta" }, a.park + " / ");
    meta.appendChild(el("span", { "class": "camera" }, a.camera));
    meta.appendChild(document.createTextNode(" · " + a.category_names.join(", ") + " " +
      (a.max_conf === null ? "" : Number(a.max_conf).toFixed(2)) + " · " + a.image_count + " photos · " + when(a.last_image_at) + " · "));
    meta.appendChild(el("span", { "class": "state state-" + a.state }, a.state));
    li.appendChild(meta);
    return li;
  }
  if (page === "alerts") {
    var feed = document.getElementById("alert-feed");
    var etag = null;
    var params = new URLSearchParams(location.search);
    var firstPage = !params.get("before");
    params.delete("before");
    var poll = function () {
      params.set("after", feed.getAttribute("data-latest"));
      var headers = { "X-CSRF-Token": csrf };
      if (etag) { headers["If-None-Match"] = etag; }
      fetch(base + "/data/alerts?" + params.toString(), { headers: headers, credentials: "same-origin" })
        .then(function (r) {
          if (r.status === 304 || !r.ok) { return null; }
          etag = r.headers.get("ETag");
          return r.json();
        }).then(function (d) {
          if (!d) { return; }
          if (d.alerts.length && firstPage) {
            var empty = feed.querySelector(".empty");
            if (empty) { empty.remove(); }
            d.alerts.slice().reverse().forEach(function (a) { feed.insertBefore(alertItem(a), feed.firstChild); });
            say(d.alerts.length + " new alert(s)");
          }
          feed.setAttribute("data-latest", Math.max(Number(feed.getAttribute("data-latest")), d.latest));
        }).catch(function () { /* next poll */ });
    };
    setInterval(poll, Number(document.body.getAttribute("data-poll-ms")) || 3000);
  }

  // ---- one alert: feedback on the alert or on one photo
  if (page === "alert") {
    var alertId = document.getElementById("alert-title").getAttribute("data-alert");
    var list = document.getElementById("feedback-list");
    var sent = function (r, text) {
      list.insertBefore(el("li", {}, "just now: " + text), list.firstChild);
      say("Feedback recorded (#" + r.feedback_id + ")");
    };
    var form = document.getElementById("feedback");
    if (form) {
      form.addEventListener("submit", function (ev) {
        ev.preventDefault();
        var f = new FormData(form);
        var body = { verdict: f.get("verdict"), what: f.get("what") || null, note: f.get("note") || null };
        api("POST", "data/alerts/" + alertId + "/feedback", body)
          .then(function (r) { sent(r, body.verdict + (body.what ? " (" + body.what + ")" : "")); })
          .catch(function (err) { say("Not recorded: " + err.message); });
      });
    }
    on("button.photo-fp", "click", function (ev) {
      var imageId = Number(ev.target.getAttribute("data-image"));
      api("POST", "data/alerts/" + alertId + "/feedback", { verdict: "false_positive", image_id: imageId })
        .then(function (r) { sent(r, "false_positive on photo " + imageId); ev.target.disabled = true; })
        .catch(function (err) { say("Not recorded: " + err.message); });
    });
  }

  // ---- operators
  on("button.proposal-confirm, button.proposal-reject", "click", function (ev) {
    var id = ev.target.getAttribute("data-id");
    var decision = ev.target.classList.contains("proposal-confirm") ? "confirm" : "reject";
    api("POST", "data/proposals/" + id + "/" + decision, {}).then(function (r) {
      var section = document.getElementById("proposal-" + id);
      section.querySelector(".status").textContent = r.status;
      section.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      say("Proposal " + id + ": " + r.status);
    }).catch(function (err) { say(err.message); });
  });
  on("button.camera-save", "click", function (ev) {
    var row = ev.target.closest("tr");
    api("POST", "data/cameras/" + ev.target.getAttribute("data-id") + "/place", {
      latitude: row.querySelector(".lat").value, longitude: row.querySelector(".lon").value,
      serials: row.querySelector(".serials").value
    }).then(function (r) { say("Saved " + r.name); }).catch(function (err) { say(err.message); });
  });
  on("button.camera-rotate", "click", function (ev) {
    if (!window.confirm("The old token stops working at once. Rotate?")) { return; }
    api("POST", "data/cameras/" + ev.target.getAttribute("data-id") + "/rotate-token", {}).then(function (r) {
      var box = document.getElementById("token-once");
      box.hidden = false;
      box.textContent = "New token of " + r.camera + " (shown once, copy it now): " + r.token +
        (r.token_address ? " · the camera emails " + r.token_address : "");
    }).catch(function (err) { say(err.message); });
  });
  var ruleForm = document.getElementById("rule-form");
  if (ruleForm) {
    ruleForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var f = new FormData(ruleForm);
      api("POST", "data/rules", { park_id: Number(f.get("park_id")),
        camera_id: f.get("camera_id") ? Number(f.get("camera_id")) : null, assignment: f.get("assignment") })
        .then(function () { say("Saved; reload to see the rules"); }).catch(function (err) { say(err.message); });
    });
  }
  on("button.apply-threshold", "click", function (ev) {
    var b = ev.target;
    api("POST", "data/rules", { park_id: Number(b.getAttribute("data-park")), camera_id: Number(b.getAttribute("data-camera")),
      assignment: b.getAttribute("data-key") + "=" + b.getAttribute("data-value") })
      .then(function () { say("Threshold applied"); b.disabled = true; }).catch(function (err) { say(err.message); });
  });
  on("button.channel-test", "click", function (ev) {
    var out = ev.target.parentNode.querySelector(".result");
    out.textContent = "sending…";
    api("POST", "data/channels/" + ev.target.getAttribute("data-id") + "/test", {})
      .then(function (r) { out.textContent = r.message; }).catch(function (err) { out.textContent = err.message; });
  });

  // ---- upload: one request per file, progress per file
  var uploadForm = document.getElementById("upload-form");
  if (uploadForm) {
    uploadForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var f = new FormData(uploadForm);
      var files = Array.prototype.slice.call(document.getElementById("upload-files").files);
      var progress = document.getElementById("upload-progress");
      var done = 0, failed = 0;
      var next = function (i) {
        if (i >= files.length) { say("Uploaded " + done + " of " + files.length + (failed ? ", " + failed + " failed" : "")); return; }
        var file = files[i];
        var li = el("li", { "data-file": file.name }, file.name + ": 0%");
        progress.appendChild(li);
        var xhr = new XMLHttpRequest();
        var q = new URLSearchParams({ camera: f.get("camera"), filename: file.name });
        if (f.get("timezone")) { q.set("timezone", f.get("timezone")); }
        xhr.open("POST", base + "/data/upload?" + q.toString());
        xhr.setRequestHeader("X-CSRF-Token", csrf);
        xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
        xhr.upload.addEventListener("progress", function (e) {
          if (e.lengthComputable) { li.textContent = file.name + ": " + Math.round(100 * e.loaded / e.total) + "%"; }
        });
        xhr.addEventListener("load", function () {
          var ok = xhr.status >= 200 && xhr.status < 300;
          var body = {};
          try { body = JSON.parse(xhr.responseText); } catch (e) { body = {}; }
          li.textContent = file.name + ": " + (ok ? "done" + (body.status ? " (" + body.status + ")" : "") : "failed: " + (body.error || xhr.status));
          li.className = ok ? "done" : "failed";
          if (ok) { done++; } else { failed++; }
          next(i + 1);
        });
        xhr.addEventListener("error", function () { li.textContent = file.name + ": failed"; li.className = "failed"; failed++; next(i + 1); });
        xhr.send(file);
      };
      next(0);
    });
  }

  // ---- admin: the ops sections, with Replay through the console API (no master key anywhere)
  if (page === "ops") {
    document.querySelectorAll("img[data-thumb]").forEach(function (img) {
      img.src = base + "/data/images/" + encodeURIComponent(img.getAttribute("data-thumb")) + "/thumbnail";
    });
    var replay = function (button) {
      var id = button.getAttribute("data-id");
      button.disabled = true;
      return api("POST", "data/ops/poison/" + id + "/replay", {}).then(function (res) {
        var row = document.getElementById("poison-" + id);
        row.querySelector(".status").textContent = (res.replayed || []).length ? "replayed" : "not replayed";
        button.remove();
        say((res.replayed || []).length ? "Replayed " + id + " onto " + res.replayed[0].queue : "Not replayed: " + id);
      }).catch(function (err) { button.disabled = false; say("Replay failed: " + err.message); });
    };
    on("button.replay", "click", function (ev) { replay(ev.target); });
    var all = document.getElementById("replay-all");
    if (all) {
      all.addEventListener("click", function () {
        if (!window.confirm("Replay every poisoned message?")) { return; }
        document.querySelectorAll("button.replay").forEach(function (b) { replay(b); });
      });
    }
  }
})();
