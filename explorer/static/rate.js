// Video rating: add entities from a vocabulary search to the list of marks.
(function () {
  var input = document.getElementById("entity-search");
  var results = document.getElementById("entity-results");
  var list = document.getElementById("candidates");
  var none = document.getElementById("none");
  if (!input || !results || !list) { return; }
  var timer = null;

  function present(kg) {
    var boxes = list.querySelectorAll("input[name=kg]");
    for (var i = 0; i < boxes.length; i++) { if (boxes[i].value === kg) { return boxes[i]; } }
    return null;
  }

  function add(entity) {
    var box = present(entity.kg_id);
    if (!box) {
      var label = document.createElement("label");
      label.className = "option";
      box = document.createElement("input");
      box.type = "checkbox"; box.name = "kg"; box.value = entity.kg_id;
      label.appendChild(box);
      label.appendChild(document.createTextNode(" " + entity.name));
      list.appendChild(label);
    }
    box.checked = true;
    if (none) { none.checked = false; }
    results.innerHTML = ""; input.value = "";
  }

  function search() {
    var q = input.value.trim();
    if (!q) { results.innerHTML = ""; return; }
    fetch("/api/search?q=" + encodeURIComponent(q), {credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (data) {
        results.innerHTML = "";
        (data.entities || []).slice(0, 8).forEach(function (e) {
          var li = document.createElement("li");
          li.appendChild(document.createTextNode(e.name + " "));
          var b = document.createElement("button");
          b.type = "button"; b.textContent = "add"; b.className = "add-entity";
          b.setAttribute("data-kg", e.kg_id);
          b.addEventListener("click", function () { add(e); });
          li.appendChild(b);
          results.appendChild(li);
        });
      });
  }

  input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(search, 150); });
  input.addEventListener("keydown", function (ev) { if (ev.key === "Enter") { ev.preventDefault(); search(); } });
  list.addEventListener("change", function () { if (none) { none.checked = false; } });
  if (none) {
    none.addEventListener("change", function () {
      if (none.checked) { list.querySelectorAll("input[name=kg]").forEach(function (b) { b.checked = false; }); }
    });
  }
})();
