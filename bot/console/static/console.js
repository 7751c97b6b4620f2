// The staff console's only script: SLA badges count down (amber when a third of the window or
// less is left, red when overdue) and canned replies fill the reply box. Pages work without it.
(function () {
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".sla[data-deadline]").forEach(function (el) {
      if (!el.dataset.deadline) return;
      var left = Math.round((Date.parse(el.dataset.deadline) - now) / 1000);
      var win = parseInt(el.dataset.window || "0", 10) || 1;
      var what = el.dataset.what || "";
      var level = left <= 0 ? "red" : (left <= win / 3 ? "amber" : "ok");
      el.classList.remove("ok", "amber", "red");
      el.classList.add(level);
      var abs = Math.abs(left), m = Math.floor(abs / 60), s = abs % 60;
      var text = (m >= 60 ? Math.floor(m / 60) + "时" + (m % 60) + "分" : m + "分" + (s < 10 ? "0" : "") + s + "秒");
      el.textContent = left <= 0 ? what + "已超时 " + text : what + "剩 " + text;
    });
  }
  document.addEventListener("click", function (ev) {
    var chip = ev.target.closest("[data-canned]");
    if (!chip) return;
    var box = document.getElementById("reply-text");
    if (box) { box.value = chip.dataset.canned; box.focus(); }
  });
  setInterval(tick, 1000);
  document.addEventListener("DOMContentLoaded", tick);
  document.addEventListener("htmx:afterSettle", tick);
})();
