/* Vern console: after a boosted (htmx) page change, move the focus the way a full page load would
 * leave it for a keyboard or screen-reader user, and announce the new page's title.
 * Focus goes to an element of the new content marked `autofocus` (an error summary, a one-time
 * notice), else to the first field marked invalid (its message is tied to it), else to the page's
 * main heading, else to <main id="main" tabindex="-1">.
 * Served as a file: the console's CSP forbids inline script. */
(function () {
  "use strict";
  function target() {
    var main = document.getElementById("main");
    var auto = document.querySelector("[autofocus]");
    if (auto) return auto;
    var invalid = main && main.querySelector("[aria-invalid='true']");
    if (invalid) return invalid;
    var heading = main && main.querySelector("h1");
    if (heading) {
      if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
      return heading;
    }
    return main;
  }
  function announce() {
    var region = document.getElementById("vern-announce");
    if (!region) return;
    region.textContent = "";
    /* A change after a pause: screen readers skip a live region whose text is set as it appears. */
    window.setTimeout(function () { region.textContent = document.title; }, 150);
  }
  document.addEventListener("htmx:afterSettle", function (evt) {
    var detail = evt.detail || {};
    if (!detail.boosted) return;
    var el = target();
    if (el && document.activeElement !== el) el.focus({ preventScroll: false });
    announce();
  });
})();
