/*
 * istore admin: the metadata editor checks its JSON while you type and
 * refuses to submit text that is not a JSON object. The server checks again
 * (objects/admin/forms.py): this is for quick feedback, not for safety.
 */
(function () {
  "use strict";

  function statusFor(textarea) {
    var status = textarea.parentNode.querySelector(".istore-json-status");
    if (!status) {
      status = document.createElement("div");
      status.className = "istore-json-status";
      status.setAttribute("role", "status");
      status.setAttribute("aria-live", "polite");
      textarea.parentNode.insertBefore(status, textarea.nextSibling);
    }
    return status;
  }

  // Returns the parsed object, or null after showing why the text is refused.
  function check(textarea) {
    var status = statusFor(textarea);
    var value;
    try {
      if (!textarea.value.trim()) {
        throw new Error("enter a JSON object; {} means no metadata");
      }
      value = JSON.parse(textarea.value);
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        throw new Error('the metadata must be a JSON object, such as {"name": "my video"}');
      }
    } catch (error) {
      status.textContent = "Invalid JSON: " + error.message;
      status.className = "istore-json-status istore-json-invalid";
      textarea.setAttribute("aria-invalid", "true");
      return null;
    }
    status.textContent = "Valid JSON object";
    status.className = "istore-json-status istore-json-valid";
    textarea.removeAttribute("aria-invalid");
    return value;
  }

  function insertSpaces(event) {
    // Tab indents inside the editor instead of leaving it (Shift+Tab still leaves).
    if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.altKey) return;
    event.preventDefault();
    var area = event.target;
    var start = area.selectionStart;
    area.setRangeText("  ", start, area.selectionEnd, "end");
    area.dispatchEvent(new Event("input"));
  }

  function setUp(textarea) {
    var form = textarea.form;
    textarea.addEventListener("input", function () { check(textarea); });
    textarea.addEventListener("keydown", insertSpaces);
    form.addEventListener("submit", function (event) {
      if (check(textarea) === null) {
        event.preventDefault();
        var status = statusFor(textarea);
        status.textContent = "Not saved. " + status.textContent;
        textarea.focus();
      }
    });
    var format = form.querySelector("[data-json-format]");
    if (format) {
      format.addEventListener("click", function () {
        var value = check(textarea);
        if (value !== null) textarea.value = JSON.stringify(value, null, 2);
      });
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("textarea[data-json-editor]").forEach(setUp);
  });
})();
