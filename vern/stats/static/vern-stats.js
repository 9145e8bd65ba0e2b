/* Vern statistics beacon: <script src="https://VERN/s/vern-stats.js" data-site="SITE-ID" defer></script>
 * No cookies, no storage on the device, no query strings: only the path, the referrer's host and
 * the browser's own headers. Do Not Track and Global Privacy Control switch it off. */
(function () {
  "use strict";
  var d = document, n = navigator, me = d.currentScript;
  if (!me || n.doNotTrack === "1" || window.doNotTrack === "1" || n.globalPrivacyControl === true) return;
  var site = me.getAttribute("data-site"), to = new URL(me.src).origin + "/s/e", last = null;
  function host(u) { try { return u ? new URL(u).hostname : ""; } catch (e) { return ""; } }
  function send() {
    var path = location.pathname;
    if (path === last) return;
    var ref = last === null && host(d.referrer) !== location.hostname ? host(d.referrer) : "";
    last = path;
    try {
      fetch(to, { method: "POST", keepalive: true, credentials: "omit", mode: "no-cors",
        headers: { "Content-Type": "text/plain" },
        body: JSON.stringify({ s: site, u: path, r: ref ? "https://" + ref + "/" : "" }) });
    } catch (e) { /* statistics never break the page */ }
  }
  var push = history.pushState;
  history.pushState = function () { push.apply(this, arguments); send(); };
  addEventListener("popstate", send);
  send();
})();
