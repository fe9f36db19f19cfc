/* Studio's own script: live updates over websockets, the wizard, the traffic sliders, copy buttons,
   live charts and log follow. Plain JavaScript, no build step; htmx does the rest. It computes no
   cost: every figure comes from the server (apps.costs.selectors), fetched as fragments. */
(function () {
  "use strict";

  function wsUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  /* A websocket that reconnects with back-off; onMessage gets parsed JSON; onOpen runs on every (re)connect. */
  function liveSocket(path, onMessage, onOpen) {
    var delay = 1000;
    var socket = null;
    var closed = false;
    function open() {
      socket = new WebSocket(wsUrl(path));
      socket.onopen = function () { delay = 1000; if (onOpen) onOpen(); };
      socket.onmessage = function (event) {
        try { onMessage(JSON.parse(event.data)); } catch (e) { /* a malformed message is skipped */ }
      };
      socket.onclose = function (event) {
        if (closed || (event.code >= 4400 && event.code < 4500)) return; /* refused: signed out, role, not found */
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 15000);
      };
    }
    open();
    return { close: function () { closed = true; if (socket) socket.close(); } };
  }

  function refresh(el) {
    if (window.htmx) window.htmx.trigger(el, "studio:refresh");
  }

  /* --- deployment state on every open page --- */
  function onStudioMessage(msg) {
    if (msg.type === "endpoint.traffic" || msg.type === "endpoint.rollout") {
      refreshLive(msg.type, msg.endpoint);
      document.body.dataset.lastTraffic = msg.endpoint + ":" + JSON.stringify(msg.traffic || msg.state);
      return;
    }
    if (msg.type !== "deployment.state") return;
    document.querySelectorAll('[data-state-of="' + msg.uid + '"]').forEach(function (badge) {
      badge.textContent = msg.state;
      badge.className = "badge " + msg.state;
    });
    var lists = Array.prototype.filter.call(document.querySelectorAll('[data-refresh-on~="deployment.state"]'), function (el) {
      return !el.dataset.refreshEndpoint || el.dataset.refreshEndpoint === msg.endpoint;
    });
    lists.forEach(refresh);
    // A card inside a list that is refreshed anyway needs no request of its own.
    document.querySelectorAll('[data-deployment-uid="' + msg.uid + '"]').forEach(function (card) {
      if (!lists.some(function (list) { return list.contains(card); })) refresh(card);
    });
    document.body.dataset.lastState = msg.deployment + ":" + msg.state;
  }

  /* --- the create wizard: one form, shown a step at a time --- */
  function initWizard(form) {
    if (form.dataset.ready) return;
    form.dataset.ready = "1";
    var steps = Array.prototype.slice.call(form.querySelectorAll("[data-step]"));
    var labels = document.querySelectorAll("[data-step-label]");
    var current = 0;
    var errorStep = steps.findIndex(function (s) { return s.querySelector(".errorlist"); });
    if (errorStep >= 0) current = errorStep;
    function show(index) {
      current = index;
      steps.forEach(function (step, i) { step.hidden = i !== index; });
      labels.forEach(function (label, i) {
        if (i === index) label.setAttribute("aria-current", "step"); else label.removeAttribute("aria-current");
      });
      if (index === steps.length - 1) review();
      var focusable = steps[index].querySelector("input:not([type=hidden]), select, textarea, button");
      if (focusable && form.dataset.touched) focusable.focus();
    }
    function valid(step) {
      var fields = step.querySelectorAll("input, select, textarea");
      for (var i = 0; i < fields.length; i++) {
        if (!fields[i].checkValidity()) { fields[i].reportValidity(); return false; }
      }
      return true;
    }
    function review() {
      var dl = form.querySelector("#wizard-review");
      dl.textContent = "";
      var pick = function (name) { return form.elements[name]; };
      var rows = [
        ["Endpoint", pick("name").value], ["Auth mode", pick("auth_mode").value],
        ["Deployment", pick("deployment_name").value],
        ["Model", pick("model").selectedOptions[0] ? pick("model").selectedOptions[0].text : "—"],
        ["Code", Array.prototype.map.call(pick("code_files").files, function (f) { return f.name; }).join(", ") || "—"],
        ["Scoring script", pick("scoring_script").value],
        ["Environment", pick("environment").selectedOptions[0] ? pick("environment").selectedOptions[0].text : "—"],
        ["Instances", pick("instance_count").value + " × " + pick("instance_type").value],
        ["Estimate", (document.querySelector("[data-estimate-price]") || {}).textContent || "—"],
        ["Quota", (document.querySelector("[data-estimate-quota]") || {}).textContent || "—"],
        ["Traffic", pick("all_traffic").checked ? "100 % to " + pick("deployment_name").value : "none yet"],
      ];
      rows.forEach(function (row) {
        var dt = document.createElement("dt"); dt.textContent = row[0];
        var dd = document.createElement("dd"); dd.textContent = row[1];
        dl.appendChild(dt); dl.appendChild(dd);
      });
    }
    form.addEventListener("click", function (event) {
      var target = event.target;
      if (target.matches("[data-next]")) {
        form.dataset.touched = "1";
        if (valid(steps[current])) show(Math.min(current + 1, steps.length - 1));
      } else if (target.matches("[data-back]")) {
        form.dataset.touched = "1";
        show(Math.max(current - 1, 0));
      }
    });
    form.addEventListener("submit", function () {
      var button = form.querySelector("[type=submit]");
      if (button) { button.disabled = true; button.textContent = "Creating…"; }
    });
    show(current);
  }

  /* --- the Traffic form: sliders kept summing to 100, number boxes that take 0-100 and are never rewritten
     while focused, Apply only at a total of 100 (or 0), and a confirmation showing the change and its cost --- */
  function initTraffic(form) {
    if (form.dataset.ready) return;
    form.dataset.ready = "1";
    var rows = Array.prototype.slice.call(form.querySelectorAll("[data-slider-row]"));
    var apply = form.querySelector("#traffic-apply");
    function box(row) { return row.querySelector("[data-traffic-number]"); }
    /* A whole number from 0 to 100, else null: "3020" or "-5" is refused, never capped. */
    function parse(input) {
      var text = input.value.trim();
      if (!/^[0-9]{1,3}$/.test(text)) return null;
      var value = parseInt(text, 10);
      return value <= 100 ? value : null;
    }
    function values() {
      return rows.map(function (row) { var v = parse(box(row)); return v === null ? 0 : v; });
    }
    function set(index, value) {
      var row = rows[index];
      if (box(row) !== document.activeElement) box(row).value = value;
      row.querySelector("[data-traffic-slider]").value = value;
    }
    /* Move one deployment to `value` and spread the difference over the others, in proportion (sliders only). */
    function rebalance(index, value) {
      value = Math.max(0, Math.min(100, value));
      var current = values();
      var othersTotal = 0;
      current.forEach(function (v, i) { if (i !== index) othersTotal += v; });
      var remaining = 100 - value;
      var next = current.slice();
      next[index] = value;
      var others = current.map(function (_, i) { return i; }).filter(function (i) { return i !== index; });
      if (others.length === 0) { next[index] = 100; }
      else if (othersTotal === 0) {
        others.forEach(function (i) { next[i] = 0; });
        next[others[0]] = remaining;
      } else {
        var given = 0;
        others.forEach(function (i) { next[i] = Math.floor(current[i] * remaining / othersTotal); given += next[i]; });
        for (var k = 0; given < remaining; k = (k + 1) % others.length) { next[others[k]] += 1; given += 1; }
      }
      next.forEach(function (v, i) { set(i, v); });
      changed();
    }
    /* The total here; the cost line is the server's (one definition of every cost), fetched by htmx. */
    function summarize() {
      var invalid = rows.filter(function (row) {
        var ok = parse(box(row)) !== null;
        box(row).setAttribute("aria-invalid", ok ? "false" : "true");
        return !ok;
      });
      var total = values().reduce(function (a, b) { return a + b; }, 0);
      var totalEl = form.querySelector("#traffic-total");
      var hint = form.querySelector("#traffic-total-hint");
      /* a box out of 0–100 has no share to add: no total rather than one that leaves it out */
      if (totalEl) totalEl.textContent = invalid.length ? "—" : String(total);
      var ready = invalid.length === 0 && (total === 100 || total === 0);
      if (hint) {
        hint.textContent = invalid.length ? "each box takes a whole number from 0 to 100"
          : (ready ? "" : "the total must be 100 (or 0) to apply");
      }
      /* a role that may not move traffic keeps its Apply disabled whatever the total ({% gate %} set it) */
      if (apply && !apply.dataset.needsRole) apply.disabled = !ready;
    }
    function changed() {
      form.dataset.dirty = "1";
      summarize();
      var cost = form.querySelector("#traffic-cost");
      if (cost && window.htmx) window.htmx.trigger(cost, "studio:cost");
    }
    rows.forEach(function (row, index) {
      row.querySelector("[data-traffic-slider]").addEventListener("input", function (event) {
        rebalance(index, parseInt(event.target.value, 10));
      });
      box(row).addEventListener("input", function () {
        var value = parse(box(row));
        if (value !== null) row.querySelector("[data-traffic-slider]").value = value;
        changed();
      });
    });
    form.addEventListener("change", changed);
    function mirrorText(name, percent) { return name && percent ? "to " + name + " " + percent + " %" : "off"; }
    function diff() {
      var lines = [];
      rows.forEach(function (row, i) {
        var before = parseInt(box(row).dataset.current || "0", 10);
        var after = values()[i];
        if (before !== after) lines.push(row.dataset.deployment + " " + before + " → " + after);
      });
      var enabled = form.elements.mirror_enabled && form.elements.mirror_enabled.checked;
      var name = enabled ? form.elements.mirror_deployment.value : "";
      var percent = enabled ? parseInt(form.elements.mirror_percent.value || "0", 10) : 0;
      var before = mirrorText(form.dataset.mirrorCurrent, parseInt(form.dataset.mirrorCurrentPercent || "0", 10));
      var after = mirrorText(name, percent);
      if (before !== after) lines.push("mirror " + before + " → " + after);
      return lines.length ? lines : ["no change"];
    }
    var dialog = form.querySelector("#traffic-confirm");
    form.addEventListener("submit", function (event) {
      if (form.dataset.confirmed || !dialog || !dialog.showModal) { delete form.dataset.confirmed; return; }
      event.preventDefault();
      event.stopImmediatePropagation();
      var list = dialog.querySelector("#traffic-diff");
      list.textContent = "";
      diff().forEach(function (line) { var li = document.createElement("li"); li.textContent = line; list.appendChild(li); });
      var cost = form.querySelector("[data-cost-effect]");
      dialog.querySelector("#traffic-confirm-cost").textContent = cost ? cost.textContent : "";
      dialog.showModal();
    }, true);
    if (dialog) {
      dialog.querySelector("#traffic-confirm-cancel").addEventListener("click", function () { dialog.close(); });
      dialog.querySelector("#traffic-confirm-apply").addEventListener("click", function () {
        dialog.close();
        form.dataset.confirmed = "1";
        if (form.requestSubmit) form.requestSubmit(apply); else form.submit();
      });
    }
    summarize();
  }

  /* --- live pages: what changed elsewhere redraws the parts that show it; a form being edited is not
     rewritten under the user's hands, it says so instead --- */
  function refreshLive(type, endpoint) {
    document.querySelectorAll('[data-refresh-on~="' + type + '"]').forEach(function (el) {
      if (el.dataset.refreshEndpoint && el.dataset.refreshEndpoint !== endpoint) return;
      var form = el.dataset.liveForm ? el.querySelector(el.dataset.liveForm) : null;
      if (form && form.dataset.dirty) {
        var notice = el.querySelector("#traffic-changed-elsewhere");
        if (notice) notice.hidden = false;
        return;
      }
      refresh(el);
    });
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-reload-values]");
    if (!button) return;
    var panel = button.closest("[data-live-form]");
    if (panel) refresh(panel);
  });

  /* --- the confirmation dialog (templates/partials/_confirm_dialog.html), never window.confirm() ---
     ask(question, options, onOk): options.title and options.action name the dialog and its button. */
  function ask(question, options, onOk) {
    var dialog = document.getElementById("confirm-dialog");
    if (!dialog || typeof dialog.showModal !== "function") { onOk(); return; }
    dialog.querySelector("#confirm-title").textContent = options.title || "Are you sure?";
    dialog.querySelector("#confirm-message").textContent = question;
    dialog.querySelector("#confirm-ok").textContent = options.action || "Confirm";
    dialog.returnValue = "";
    var closed = function () {
      dialog.removeEventListener("close", closed);
      if (dialog.returnValue === "ok") onOk();
    };
    dialog.addEventListener("close", closed);
    dialog.showModal();
  }
  function confirmOptions(el) {
    var source = el.closest("[data-confirm-action], [data-confirm-title]") || el;
    return { title: source.dataset.confirmTitle, action: source.dataset.confirmAction };
  }
  /* Plain forms that ask first: data-confirm="question". */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.dataset || !form.dataset.confirm || form.dataset.confirmed) return;
    event.preventDefault();
    var submitter = event.submitter;
    ask(form.dataset.confirm, confirmOptions(form), function () {
      form.dataset.confirmed = "1";
      if (form.requestSubmit) form.requestSubmit(submitter || undefined); else form.submit();
      delete form.dataset.confirmed;
    });
  });
  /* htmx's hx-confirm goes through the same dialog. */
  document.addEventListener("htmx:confirm", function (event) {
    if (!event.detail || !event.detail.question) return;
    event.preventDefault();
    ask(event.detail.question, confirmOptions(event.detail.elt), function () { event.detail.issueRequest(true); });
  });

  /* --- toasts: success and info go after a few seconds, errors stay until closed --- */
  var TOAST_MS = 6000;
  function dismiss(toast) {
    toast.classList.add("leaving");
    setTimeout(function () { if (toast.parentNode) toast.parentNode.removeChild(toast); }, 300);
  }
  function initToasts(root) {
    root.querySelectorAll("[data-toast]").forEach(function (toast) {
      if (toast.dataset.ready) return;
      toast.dataset.ready = "1";
      if (!("toastSticky" in toast.dataset)) setTimeout(function () { dismiss(toast); }, TOAST_MS);
    });
  }
  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-toast-close]");
    if (close) dismiss(close.closest("[data-toast]"));
  });

  /* --- copy buttons --- */
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.querySelector(button.dataset.copy);
    if (!source) return;
    var text = source.textContent;
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
    } else {
      selectText(source);
    }
  });
  function selectText(node) {
    var range = document.createRange();
    range.selectNodeContents(node);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  /* --- live charts --- */
  /* The chart follows the page's colours (light or dark) and its card's height. */
  function themed(layout, div) {
    var css = getComputedStyle(document.documentElement);
    var fg = css.getPropertyValue("--fg").trim() || "#1b1f24";
    var line = css.getPropertyValue("--line").trim() || "#d0d7de";
    layout.height = Math.max(200, div.clientHeight - 16);
    layout.paper_bgcolor = "rgba(0,0,0,0)";
    layout.plot_bgcolor = "rgba(0,0,0,0)";
    layout.font = Object.assign({}, layout.font || {}, { color: fg });
    Object.keys(layout).forEach(function (key) {
      if (/^[xy]axis\d*$/.test(key)) layout[key] = Object.assign({}, layout[key], { gridcolor: line, zerolinecolor: line });
    });
    if (layout.legend) layout.legend = Object.assign({}, layout.legend, { bgcolor: "rgba(0,0,0,0)" });
    return layout;
  }
  /* plotly.js for charts that appear on a page drawn without them (a rollout started elsewhere): loaded once,
     from the studio (the CSP allows scripts of its own origin only). */
  var plotlyWaiting = null;
  function withPlotly(url, then) {
    if (window.Plotly) { then(); return; }
    if (plotlyWaiting) { plotlyWaiting.push(then); return; }
    plotlyWaiting = [then];
    var script = document.createElement("script");
    script.src = url;
    script.onload = function () { var waiting = plotlyWaiting; plotlyWaiting = null; waiting.forEach(function (f) { f(); }); };
    document.head.appendChild(script);
  }
  function initCharts(panel) {
    if (panel.dataset.ready) return;
    panel.dataset.ready = "1";
    var container = panel.querySelector("#charts");
    var empty = panel.querySelector("#charts-empty");
    var status = panel.querySelector("#charts-status");
    var size = panel.dataset.chartClass || "";
    /* Each chart is a card: its title an HTML heading (never inside the plot, where it could meet the legend). */
    function card(key, fig) {
      var id = "chart-" + key;
      var div = document.getElementById(id);
      if (div) return div;
      var title = fig.layout && fig.layout.title;
      var text = (title && (title.text || title)) || key;
      var figure = document.createElement("figure");
      figure.className = "card chart-card";
      var caption = document.createElement("figcaption");
      caption.textContent = text;
      div = document.createElement("div");
      div.id = id;
      div.className = "chart " + size;
      figure.appendChild(caption);
      figure.appendChild(div);
      container.appendChild(figure);
      return div;
    }
    function draw(figures) {
      if (!figures || !Object.keys(figures).length) { if (empty) empty.hidden = false; return; }
      if (empty) empty.hidden = true;
      Object.keys(figures).forEach(function (key) {
        var fig = figures[key];
        var div = card(key, fig);
        // Plain SVG traces: WebGL is not everywhere (headless browsers, old GPUs) and the series are short.
        (fig.data || []).forEach(function (trace) {
          if (trace.type === "scattergl") trace.type = "scatter";
          // A lone point of a line is invisible: draw it as a marker until a second one arrives.
          if (trace.mode === "lines" && (trace.x || []).length < 2) trace.mode = "lines+markers";
        });
        var layout = Object.assign({}, fig.layout || {});
        delete layout.title;
        layout = themed(Object.assign(layout, { autosize: true }), div);
        if (window.Plotly) window.Plotly.react(div, fig.data || [], layout, { responsive: true, displaylogo: false });
      });
      if (!window.Plotly && panel.dataset.plotlyUrl) { withPlotly(panel.dataset.plotlyUrl, function () { draw(figures); }); return; }
      if (status) status.textContent = "Updated " + new Date().toLocaleTimeString();
      panel.dataset.updates = String(parseInt(panel.dataset.updates || "0", 10) + 1);
    }
    var initial = panel.querySelector("#figures-data") || document.getElementById("figures-data");
    draw(initial ? JSON.parse(initial.textContent) : null);
    if (panel.dataset.wsUrl) {
      /* Figures are pushed after each ingest; one fetch when the socket (re)opens covers an ingest
         that came between drawing the page and joining (or while the socket was down). A page showing
         another range or percentile than the pushed default fetches its own figures on each push. */
      var catchUp = function () {
        if (!panel.dataset.figuresUrl) return;
        fetch(panel.dataset.figuresUrl, { credentials: "same-origin" })
          .then(function (response) { return response.ok ? response.json() : null; })
          .then(function (body) { if (body && body.figures) draw(body.figures); })
          .catch(function () { /* the next push redraws */ });
      };
      var refetch = "refetchOnPush" in panel.dataset;
      var socket = liveSocket(panel.dataset.wsUrl, function (msg) {
        if (!panel.isConnected) { socket.close(); return; }  /* a redraw took the charts away (a rollout ended) */
        if (msg.type !== "endpoint.charts") return;
        if (refetch) catchUp(); else draw(msg.figures);
      }, catchUp);
    }
  }

  /* --- log follow --- */
  var logSocket = null;
  function initLogs(panel) {
    if (panel.dataset.ready) return;
    panel.dataset.ready = "1";
    var box = panel.querySelector("[data-logs-follow]");
    if (!box) return;
    if (logSocket && !panel.dataset.follow) { logSocket.close(); logSocket = null; }
    box.addEventListener("change", function () {
      if (logSocket) { logSocket.close(); logSocket = null; }
      if (!box.checked) return;
      var form = panel.querySelector("[data-logs-form]");
      var params = new URLSearchParams(new FormData(form));
      var search = (params.get("search") || "").toLowerCase();
      var keep = parseInt(params.get("lines") || "100", 10) || 100;
      var lines = null;  // the raw last lines, once the log's reader sent them (search filters what shows)
      logSocket = liveSocket(panel.dataset.wsUrl + "?" + params.toString(), function (msg) {
        if (msg.type !== "deployment.logs") return;
        if (msg.reset) lines = msg.lines.slice();
        else if (lines === null) return;  // new lines before the snapshot: the snapshot has them
        else lines = lines.concat(msg.lines);
        if (lines.length > keep) lines = lines.slice(lines.length - keep);
        var pre = panel.querySelector("#logs-content");
        if (!pre) {
          pre = document.createElement("pre");
          pre.id = "logs-content";
          pre.className = "log";
          pre.tabIndex = 0;
          var empty = panel.querySelector("#logs-empty");
          if (empty) empty.replaceWith(pre); else panel.appendChild(pre);
        }
        var shown = search ? lines.filter(function (l) { return l.toLowerCase().indexOf(search) >= 0; }) : lines;
        pre.textContent = shown.join("\n");
        pre.scrollTop = pre.scrollHeight;
        panel.dataset.followUpdates = String(parseInt(panel.dataset.followUpdates || "0", 10) + 1);
      });
    });
  }

  function init(root) {
    initToasts(root);
    root.querySelectorAll("[data-wizard]").forEach(initWizard);
    root.querySelectorAll("[data-traffic-form]").forEach(initTraffic);
    root.querySelectorAll("[data-charts]").forEach(initCharts);
    root.querySelectorAll("[data-logs-panel]").forEach(initLogs);
  }

  document.addEventListener("DOMContentLoaded", function () {
    init(document);
    var live = document.body.dataset.liveUrl;
    if (live) liveSocket(live, onStudioMessage);
    // Traffic, rollouts and deployment states all arrive on the studio socket (the endpoint list shows them too).
    document.body.addEventListener("htmx:afterSettle", function (event) { init(event.target.ownerDocument || document); });
  });
})();
