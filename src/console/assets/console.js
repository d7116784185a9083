// Keyward admin console: small enhancements. Every page works without this script.
(function () {
  "use strict";

  // Copy the key shown once.
  document.querySelectorAll("[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.getAttribute("data-copy"));
      if (!field) return;
      field.select();
      var done = function () { button.textContent = "Copied"; setTimeout(function () { button.textContent = "Copy"; }, 2000); };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(field.value).then(done, function () { document.execCommand("copy"); done(); });
      } else {
        document.execCommand("copy");
        done();
      }
    });
  });

  // "Add my IP": append the viewer's address to the IP list.
  document.querySelectorAll("[data-add-ip]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      var list = document.getElementById(button.getAttribute("data-target"));
      if (!list) return;
      event.preventDefault();
      var ip = button.getAttribute("data-add-ip");
      var lines = list.value.split(/\r?\n/).map(function (l) { return l.trim(); }).filter(Boolean);
      if (lines.indexOf(ip) === -1) lines.push(ip);
      list.value = lines.join("\n");
      list.dispatchEvent(new Event("input"));
    });
  });

  // Inline validation of IP rules, line by line; the server checks again.
  var octet = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
  var v4 = new RegExp("^" + octet + "(\\." + octet + "){3}$");
  var v4cidr = new RegExp("^" + octet + "(\\." + octet + "){3}/(3[0-2]|[12]?\\d)$");
  var wildcard = new RegExp("^" + octet + "(\\." + octet + "){0,2}(\\.\\*)+$");
  function validRule(rule) {
    if (rule === "*") return true;
    if (v4.test(rule) || v4cidr.test(rule)) return true;
    if (wildcard.test(rule) && rule.split(".").length === 4) return true;
    // IPv6, with an optional prefix: hex groups and colons.
    return /^[0-9a-fA-F:.]+(\/(12[0-8]|1[01]\d|[1-9]?\d))?$/.test(rule) && rule.indexOf(":") !== -1;
  }
  document.querySelectorAll("textarea[data-ip-rules]").forEach(function (list) {
    var report = document.getElementById(list.getAttribute("data-ip-rules"));
    // On load, the server's own message (a refused save) stays until the list is edited.
    function check(event) {
      var lines = list.value.split(/\r?\n/).map(function (l) { return l.trim(); }).filter(Boolean);
      var bad = lines.filter(function (l) { return !validRule(l); });
      var messages = [];
      if (bad.length) messages.push("Not an address, CIDR block, a.b.c.* wildcard or *: " + bad.join(", "));
      if (lines.indexOf("*") !== -1) messages.push("* allows every address on the internet.");
      if (lines.some(function (l) { return /\/0$/.test(l); })) {
        messages.push("A block ending in /0 allows every address of its kind on the internet.");
      }
      if (!lines.length) messages.push("An empty list allows no address: the key cannot be used.");
      if (!event && !messages.length) return;
      list.classList.toggle("invalid", bad.length > 0);
      if (report) report.textContent = messages.join(" ");
    }
    list.addEventListener("input", check);
    check();
  });

  // A key shown once must not come back from the back/forward cache.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    var key = document.getElementById("new-key");
    if (key) { key.value = ""; window.location.replace(key.getAttribute("data-leave") || "/admin/apis"); }
  });

  // Ask before destructive actions.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) event.preventDefault();
    });
  });
})();
