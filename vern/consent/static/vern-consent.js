/* Vern consent banner. One script tag, no dependencies:
 *   <script src="https://VERN/c/vern-consent.js" data-org="ORG-SLUG" async></script>
 * Host links: data-vern-consent="open" (change the choice), ="withdraw" (one click withdraws).
 * Nothing non-essential runs before a choice: tagged scripts and iframes stay inert
 * (<script type="text/plain" data-category="statistics" src="…">, <iframe data-category="marketing"
 * data-src="…">) until their category is allowed. Global Privacy Control is read before anything
 * runs. Every choice is stored on the visitor's device (a strictly necessary cookie) and posted to
 * Vern as a consent record. Google Consent Mode v2 defaults to "denied" and is updated per choice.
 */
(function () {
  "use strict";
  var me = document.currentScript;
  if (!me || window.VernConsent) return;
  var base = new URL(me.src).origin;
  var org = me.getAttribute("data-org") || "";
  var lang = (me.getAttribute("data-lang") || document.documentElement.lang || "nb").slice(0, 2) === "en" ? "en" : "nb";
  var COOKIE = "vern_consent";
  var DAYS = 182;
  var gpc = navigator.globalPrivacyControl === true;
  var cfg = null;
  var state = read();
  var allowed = {};
  var box = null;
  var lastFocus = null;
  var quieted = [];

  /* Google Consent Mode v2: everything but security storage denied until a choice says otherwise. */
  window.dataLayer = window.dataLayer || [];
  function gtag() { window.dataLayer.push(arguments); }
  var GCM = {
    statistics: ["analytics_storage"],
    marketing: ["ad_storage", "ad_user_data", "ad_personalization"],
    preferences: ["functionality_storage", "personalization_storage"]
  };
  function signals() {
    var out = { security_storage: "granted" };
    Object.keys(GCM).forEach(function (kind) {
      var ok = cfg ? cfg.purposes.some(function (p) { return p.kind === kind && allowed[p.key]; }) : false;
      GCM[kind].forEach(function (s) { out[s] = ok ? "granted" : "denied"; });
    });
    return out;
  }
  var defaults = signals();
  defaults.wait_for_update = 500;
  gtag("consent", "default", defaults);

  function read() {
    var m = document.cookie.match(/(?:^|;\s*)vern_consent=([^;]*)/);
    if (!m) return null;
    try { return JSON.parse(decodeURIComponent(m[1])); } catch (e) { return null; }
  }
  function write(s) {
    document.cookie = COOKIE + "=" + encodeURIComponent(JSON.stringify(s)) + ";path=/;max-age=" +
      DAYS * 86400 + ";SameSite=Lax" + (location.protocol === "https:" ? ";Secure" : "");
  }
  function newId() {
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text) e.textContent = text;
    return e;
  }
  function cats(node) {
    return (node.getAttribute("data-category") || "").split(/[\s,]+/).filter(Boolean);
  }
  function permitted(node) {
    var c = cats(node);
    return c.length > 0 && c.every(function (k) { return allowed[k]; });
  }

  /* Bring inert scripts and iframes to life once their categories are allowed. */
  function activate(root) {
    var nodes = (root || document).querySelectorAll("script[type='text/plain'][data-category],iframe[data-category][data-src]");
    Array.prototype.forEach.call(nodes, function (node) {
      if (!permitted(node)) return;
      if (node.tagName === "IFRAME") {
        node.setAttribute("src", node.getAttribute("data-src"));
        node.removeAttribute("data-src");
        return;
      }
      var s = document.createElement("script");
      Array.prototype.forEach.call(node.attributes, function (a) {
        if (a.name !== "type" && a.name !== "data-type") s.setAttribute(a.name, a.value);
      });
      if (node.getAttribute("data-type")) s.type = node.getAttribute("data-type");
      if (!node.src) s.text = node.text;
      node.parentNode.replaceChild(s, node);
    });
  }
  new MutationObserver(function () { if (cfg) activate(); })
    .observe(document.documentElement, { childList: true, subtree: true });

  function removeCookies(purpose) {
    var names = document.cookie.split(";").map(function (c) { return c.split("=")[0].trim(); });
    var host = location.hostname.split(".");
    (purpose.cookies || []).forEach(function (pattern) {
      var prefix = pattern.slice(-1) === "*" ? pattern.slice(0, -1) : null;
      names.forEach(function (name) {
        if (prefix === null ? name !== pattern : name.indexOf(prefix) !== 0) return;
        for (var i = 0; i < host.length; i++) {
          var d = host.slice(i).join(".");
          document.cookie = name + "=;path=/;max-age=0;domain=" + d;
        }
        document.cookie = name + "=;path=/;max-age=0";
      });
    });
  }

  function post(choices, method) {
    return fetch(cfg.post, {
      method: "POST", credentials: "omit", keepalive: true, mode: "cors",
      headers: { "Content-Type": "text/plain" },
      body: JSON.stringify({ subject: state.s, version: cfg.version, choices: choices, method: method })
    }).catch(function () { /* the choice still holds on this device */ });
  }

  function decide(choices, method) {
    var was = allowed;
    state = { s: (state && state.s) || newId(), v: cfg.version, c: choices, t: Date.now(), g: gpc };
    write(state);
    allowed = {};
    cfg.purposes.forEach(function (p) { allowed[p.key] = p.required || choices[p.key] === true; });
    gtag("consent", "update", signals());
    var lost = cfg.purposes.filter(function (p) { return was[p.key] && !allowed[p.key]; });
    lost.forEach(removeCookies);
    close();
    var sent = post(choices, method);
    if (lost.length) {
      /* A script that already ran cannot be unloaded: reload so that it stays inert. */
      sent.then(function () { location.reload(); });
      return;
    }
    activate();
    document.dispatchEvent(new CustomEvent("vern-consent", { detail: { allowed: allowed } }));
  }

  function all(value) {
    var c = {};
    cfg.purposes.forEach(function (p) { if (!p.required) c[p.key] = value; });
    return c;
  }

  /* While the dialog is open the rest of the page is inert: no focus, no clicks, hidden from
   * assistive technology. Only what this script made inert is given back. */
  function quiet(node) {
    if (node === box || node.nodeType !== 1 || node.inert) return;
    node.inert = true;
    quieted.push(node);
  }
  function unquiet() {
    quieted.forEach(function (n) { n.inert = false; });
    quieted = [];
  }

  function close() {
    if (box) { box.remove(); box = null; }
    unquiet();
    document.removeEventListener("keydown", onEscape, true);
    document.removeEventListener("focusin", keepIn, true);
    if (lastFocus && lastFocus.focus) lastFocus.focus();
  }

  function focusable() {
    return Array.prototype.filter.call(box.querySelectorAll("button,input:not([disabled]),a[href]"),
      function (x) { return x.getClientRects().length > 0; });
  }

  function trap(e) {
    if (e.key !== "Tab" || !box) return;
    var f = focusable();
    var first = f[0], last = f[f.length - 1];
    if (e.shiftKey && document.activeElement === first) { last.focus(); e.preventDefault(); }
    else if (!e.shiftKey && document.activeElement === last) { first.focus(); e.preventDefault(); }
  }
  /* Escape closes the dialog without a choice: nothing non-essential runs, as before any choice. */
  function onEscape(e) {
    if (box && (e.key === "Escape" || e.key === "Esc")) { e.preventDefault(); e.stopPropagation(); close(); }
  }
  /* Focus that lands outside (something the host page added while the dialog was open) comes back. */
  function keepIn(e) {
    if (box && !box.contains(e.target)) { var f = focusable(); if (f.length) f[0].focus(); }
  }

  function open() {
    if (!cfg || box) return;
    var t = cfg.texts;
    lastFocus = document.activeElement;
    box = el("div", { "class": "vc-backdrop" });
    var d = el("div", { "class": "vc-dialog", role: "dialog", "aria-modal": "true", "aria-labelledby": "vc-title", "aria-describedby": "vc-body", lang: cfg.lang });
    var head = el("div", { "class": "vc-head" });
    head.appendChild(el("h2", { id: "vc-title" }, t.title));
    var shut = el("button", { type: "button", "class": "vc-close", "data-vc": "close" });
    shut.appendChild(el("span", { "aria-hidden": "true" }, "\u00d7"));
    shut.appendChild(document.createTextNode(" " + t.close));
    shut.onclick = close;
    head.appendChild(shut);
    d.appendChild(head);
    var body = el("p", { id: "vc-body" }, t.body + " ");
    body.appendChild(el("a", { href: cfg.policy_url, target: "_blank", rel: "noopener" }, t.policy));
    d.appendChild(body);
    var list = el("fieldset", { "class": "vc-list", hidden: "" });
    list.appendChild(el("legend", {}, t.choose));
    cfg.purposes.forEach(function (p) {
      var row = el("div", { "class": "vc-row" });
      var id = "vc-p-" + p.key;
      var input = el("input", { type: "checkbox", id: id, "data-key": p.key, "aria-describedby": id + "-d" });
      if (p.required) { input.checked = true; input.disabled = true; }
      else input.checked = !!(state && state.v === cfg.version && state.c[p.key]);
      row.appendChild(input);
      row.appendChild(el("label", { "for": id }, p.name + (p.required ? " (" + t.required + ")" : "")));
      row.appendChild(el("p", { id: id + "-d" }, p.description));
      list.appendChild(row);
    });
    d.appendChild(list);
    var bar = el("div", { "class": "vc-buttons" });
    var reject = el("button", { type: "button", "class": "vc-btn", "data-vc": "reject" }, t.reject);
    var accept = el("button", { type: "button", "class": "vc-btn", "data-vc": "accept" }, t.accept);
    var more = el("button", { type: "button", "class": "vc-btn vc-secondary", "data-vc": "choose", "aria-expanded": "false" }, t.choose);
    var save = el("button", { type: "button", "class": "vc-btn", "data-vc": "save", hidden: "" }, t.save);
    reject.onclick = function () { decide(all(false), "banner-reject"); };
    accept.onclick = function () { decide(all(true), "banner-accept"); };
    more.onclick = function () {
      list.hidden = false; save.hidden = false; more.hidden = true;
      list.querySelector("input:not([disabled])") && list.querySelector("input:not([disabled])").focus();
    };
    save.onclick = function () {
      var c = {};
      Array.prototype.forEach.call(list.querySelectorAll("input:not([disabled])"), function (i) {
        c[i.getAttribute("data-key")] = i.checked;
      });
      decide(c, "banner-save");
    };
    [reject, accept, more, save].forEach(function (b) { bar.appendChild(b); });
    d.appendChild(bar);
    d.addEventListener("keydown", trap);
    box.appendChild(d);
    document.body.appendChild(box);
    Array.prototype.forEach.call(document.body.children, quiet);
    document.addEventListener("keydown", onEscape, true);
    document.addEventListener("focusin", keepIn, true);
    reject.focus();
    if (window.performance && performance.mark) performance.mark("vern-consent-shown");
  }

  function link() {
    /* The permanent way back to the choice: a small button, and any element the host marks. */
    if (!document.querySelector(".vc-reopen")) {
      var b = el("button", { type: "button", "class": "vc-reopen", "aria-label": cfg.texts.change }, cfg.texts.change);
      b.onclick = open;
      document.body.appendChild(b);
      if (box) quiet(b);
    }
    Array.prototype.forEach.call(document.querySelectorAll("[data-vern-consent]"), function (e) {
      var act = e.getAttribute("data-vern-consent");
      e.addEventListener("click", function (ev) {
        ev.preventDefault();
        /* "withdraw": one click takes every consent back, as easy as giving it. */
        if (act === "withdraw") window.VernConsent.withdraw(); else open();
      });
    });
  }

  function granting(c) {
    return Object.keys(c || {}).some(function (k) { return c[k] === true; });
  }

  function start(config) {
    cfg = config;
    /* A stored choice holds for its policy version - except that a consent given before the
     * browser sent Global Privacy Control gives way to it (a choice made with GPC on stands). */
    var current = state && state.v === cfg.version && state.s && !(gpc && !state.g && granting(state.c));
    if (current) {
      cfg.purposes.forEach(function (p) { allowed[p.key] = p.required || state.c[p.key] === true; });
      gtag("consent", "update", signals());
      activate();
    } else if (gpc) {
      /* Global Privacy Control: a refusal made by the browser, recorded like any other; the
       * cookies of an earlier consent go now, before anything tagged could run. */
      cfg.purposes.forEach(function (p) {
        if (!p.required && state && state.c && state.c[p.key] === true) removeCookies(p);
        allowed[p.key] = !!p.required;
      });
      decide(all(false), "gpc");
    } else {
      cfg.purposes.forEach(function (p) { allowed[p.key] = !!p.required; });
      open();
    }
    link();
  }

  function load() {
    var css = el("link", { rel: "stylesheet", href: base + "/c/vern-consent.css" });
    var ready = new Promise(function (ok) { css.onload = ok; css.onerror = ok; });
    document.head.appendChild(css);
    var conf = fetch(base + "/c/" + encodeURIComponent(org) + "/config?lang=" + lang, { credentials: "omit" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); });
    Promise.all([conf, ready]).then(function (v) { start(v[0]); })
      .catch(function () { /* no config: nothing non-essential runs */ });
  }

  window.VernConsent = {
    open: open,
    allowed: function (key) { return !!allowed[key]; },
    withdraw: function () { if (cfg) decide(all(false), "banner-withdraw"); }
  };
  if (document.body) load(); else document.addEventListener("DOMContentLoaded", load);
})();
