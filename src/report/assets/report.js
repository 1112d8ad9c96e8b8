// Sorting and filtering of the report's tables; no library, no network.
(function () {
  "use strict";

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) { return ""; }
    var v = cell.getAttribute("data-sort");
    return v !== null ? v : cell.textContent.trim();
  }

  function compare(a, b) {
    var na = Number(a), nb = Number(b);
    if (a !== "" && b !== "" && !isNaN(na) && !isNaN(nb)) { return na - nb; }
    return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
  }

  function sortBy(table, th) {
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.children, function (other) {
      if (other.hasAttribute("aria-sort")) { other.setAttribute("aria-sort", "none"); }
    });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (x, y) {
      var c = compare(cellValue(x, index), cellValue(y, index));
      return ascending ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    var status = document.getElementById(table.id + "-status");
    if (status) {
      status.textContent = "Sorted by " + th.textContent.trim() + (ascending ? ", ascending" : ", descending");
    }
  }

  function filter(input) {
    var table = document.getElementById(input.getAttribute("data-filter"));
    if (!table) { return; }
    var terms = input.value.toLowerCase().split(/\s+/).filter(function (t) { return t.length > 0; });
    var shown = 0, total = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      total += 1;
      var text = (row.textContent + " " + (row.getAttribute("data-search") || "")).toLowerCase();
      var match = terms.every(function (t) { return text.indexOf(t) !== -1; });
      row.classList.toggle("hidden-by-filter", !match);
      if (match) { shown += 1; }
    });
    var status = document.getElementById(table.id + "-status");
    if (status) { status.textContent = shown + " of " + total + " rows shown"; }
  }

  document.querySelectorAll("table[data-sortable] thead th[aria-sort]").forEach(function (th) {
    var table = th.closest("table");
    var button = th.querySelector("button.sort");
    if (button) { button.addEventListener("click", function () { sortBy(table, th); }); }
  });
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    input.addEventListener("input", function () { filter(input); });
    input.addEventListener("keydown", function (e) {
      if (e.key === "Escape") { input.value = ""; filter(input); }
    });
    if (input.value) { filter(input); }
  });
  // Printing shows every table row and every folded detail.
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.setAttribute("open", ""); });
  });
  document.documentElement.setAttribute("data-script", "ready");
})();
