/* matcher HTML report: card filters (brand, verdicts, minimum suspicion). Inlined into the page; no network.
   The card list is read once; a filter change only flips each card's `hidden` attribute. */
(function () {
  "use strict";
  var cards = Array.prototype.map.call(document.querySelectorAll("#cards .card"), function (el) {
    return {
      el: el,
      brand: el.getAttribute("data-brand"),
      verdict: el.getAttribute("data-verdict"),
      suspicion: parseFloat(el.getAttribute("data-suspicion")) || 0
    };
  });
  var brandSelect = document.getElementById("brand-filter");
  var verdictBoxes = document.querySelectorAll("input.verdict-filter");
  var range = document.getElementById("suspicion-filter");
  var rangeValue = document.getElementById("suspicion-value");
  var counter = document.getElementById("shown-count");
  var noCards = document.getElementById("no-cards");

  function apply() {
    var brand = brandSelect ? brandSelect.value : "";
    var allowed = {};
    for (var b = 0; b < verdictBoxes.length; b++) {
      allowed[verdictBoxes[b].value] = verdictBoxes[b].checked;
    }
    var minimum = range ? parseFloat(range.value) || 0 : 0;
    if (rangeValue) { rangeValue.textContent = minimum.toFixed(2); }
    var shown = 0;
    for (var i = 0; i < cards.length; i++) {
      var card = cards[i];
      var show = (brand === "" || card.brand === brand) &&
        allowed[card.verdict] !== false &&
        card.suspicion >= minimum - 1e-9;
      if (card.el.hidden === show) { card.el.hidden = !show; }
      if (show) { shown++; }
    }
    if (counter) { counter.textContent = String(shown); }
    if (noCards) { noCards.hidden = shown > 0 || cards.length === 0; }
  }

  if (brandSelect) { brandSelect.addEventListener("change", apply); }
  for (var v = 0; v < verdictBoxes.length; v++) { verdictBoxes[v].addEventListener("change", apply); }
  if (range) { range.addEventListener("input", apply); }
  apply();  // the browser may have restored form values on reload
})();
