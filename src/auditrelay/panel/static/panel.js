// The admin panel's own script: small enhancements of forms that also work without it.
// No inline script anywhere (the pages' Content-Security-Policy allows none).
(function () {
  "use strict";

  function showKind(form) {
    var checked = form.querySelector('input[name="kind"]:checked');
    if (!checked) return;
    form.querySelectorAll("[data-kinds]").forEach(function (el) {
      var on = el.getAttribute("data-kinds").split(" ").indexOf(checked.value) >= 0;
      el.hidden = !on;
      el.querySelectorAll("input, select, textarea").forEach(function (input) {
        input.disabled = !on;
      });
    });
    // The batch settings' placeholders are the chosen kind's defaults.
    form.querySelectorAll("[data-defaults]").forEach(function (input) {
      var defaults = JSON.parse(input.getAttribute("data-defaults"));
      if (checked.value in defaults) input.placeholder = String(defaults[checked.value]);
    });
  }

  // **Generate**: the service makes the signing secret on save (shown once then); without
  // this script the button posts the form, which comes back saying the same.
  function generateSigningSecret(form) {
    form.querySelector("#signing-generate").value = "on";
    var typed = form.querySelector("#signing_secret");
    typed.value = "";
    typed.disabled = true;
    form.querySelector("#signing-generate-note").hidden = false;
  }

  function headerCount(form) {
    return form.querySelectorAll("#header-rows .header-row").length;
  }

  function updateHeaderLimit(form) {
    var button = form.querySelector("#add-header");
    if (!button) return;
    var max = parseInt(button.getAttribute("data-max"), 10);
    var full = headerCount(form) >= max;
    button.disabled = full;
    var why = form.querySelector("#header-limit");
    if (why) why.textContent = full ? "At most " + max + " custom headers: delete one to add another." : "";
  }

  function nextIndex(form) {
    var next = 0;
    form.querySelectorAll("#header-rows input[name^='headers-']").forEach(function (input) {
      var n = parseInt(input.name.split("-")[1], 10);
      if (n >= next) next = n + 1;
    });
    return next;
  }

  function addHeader(form) {
    var template = form.querySelector("#header-row-template");
    var index = nextIndex(form);
    var row = template.content.firstElementChild.cloneNode(true);
    var number = headerCount(form) + 1;
    row.querySelectorAll("[name]").forEach(function (el) {
      el.name = el.name.replace("-N-", "-" + index + "-");
    });
    row.querySelectorAll("[aria-label]").forEach(function (el) {
      el.setAttribute("aria-label", el.getAttribute("aria-label") + " " + number);
    });
    var remove = row.querySelector(".remove-header");
    remove.value = "remove-header-" + index;
    form.querySelector("#header-rows").appendChild(row);
    row.querySelector("input").focus();
    updateHeaderLimit(form);
  }

  function setUpForm(form) {
    form.querySelectorAll('input[name="kind"]').forEach(function (radio) {
      radio.addEventListener("change", function () { showKind(form); });
    });
    showKind(form);
    form.addEventListener("click", function (event) {
      var button = event.target.closest("button");
      if (!button) return;
      if (button.id === "add-header") {
        event.preventDefault();
        addHeader(form);
      } else if (button.classList.contains("remove-header")) {
        event.preventDefault();
        var row = button.closest("tr");
        var focusNext = row.nextElementSibling || row.previousElementSibling;
        row.remove();
        updateHeaderLimit(form);
        (focusNext ? focusNext.querySelector("input") : form.querySelector("#add-header")).focus();
      } else if (button.id === "generate-signing-secret") {
        event.preventDefault();
        generateSigningSecret(form);
      } else if (button.id === "add-event-type") {
        var pick = form.querySelector("#event-type-pick");
        var list = form.querySelector("#event_types");
        var value = pick.value.trim();
        if (value) {
          list.value = (list.value.trim() ? list.value.trim() + "\n" : "") + value;
          pick.value = "";
        }
        pick.focus();
      }
    });
    updateHeaderLimit(form);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("destination-form");
    if (form) setUpForm(form);
    document.addEventListener("click", function (event) {
      var opener = event.target.closest("[data-dialog]");
      if (opener) {
        document.getElementById(opener.getAttribute("data-dialog")).showModal();
        return;
      }
      var closer = event.target.closest("[data-close]");
      if (closer) {
        closer.closest("dialog").close();
        return;
      }
      var copier = event.target.closest("[data-copy]");
      if (copier) {
        var source = document.getElementById(copier.getAttribute("data-copy"));
        source.select();
        if (navigator.clipboard) navigator.clipboard.writeText(source.value);
        else document.execCommand("copy");
        copier.textContent = "Copied";
      }
    });
  });
})();
