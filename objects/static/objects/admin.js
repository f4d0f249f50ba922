/*
 * istore admin: the metadata editor checks its JSON while you type and
 * refuses to submit text that is not a JSON object. The server checks again
 * (objects/admin/forms.py): this is for quick feedback, not for safety.
 *
 * A preview that fails (its source is down, refused, not an image) becomes a
 * placeholder that says why: istore answers every error as JSON
 * {"error", "detail"}, so the same URL is asked again and its answer shown.
 */
(function () {
  "use strict";

  function reasonOf(response) {
    var status = response.status + (response.statusText ? " " + response.statusText : "");
    if (response.ok) {
      return Promise.resolve(status + ": the answer is not an image this browser can show");
    }
    return response.json().then(function (body) {
      return status + ": " + body.error + ". " + body.detail;
    }, function () { return status; });
  }

  window.istoreNoPreview = function (img) {
    var src = img.currentSrc || img.src;
    img.onerror = null;
    img.classList.add("istore-broken");
    img.title = "No preview";
    img.src = img.getAttribute("data-placeholder");
    fetch(src, {credentials: "same-origin"}).then(reasonOf).then(function (reason) {
      img.title = "No preview: " + reason;
      var note = img.id === "istore-preview" && document.getElementById("istore-preview-reason");
      if (note) {
        note.textContent = "No preview: " + reason;
        note.hidden = false;
      }
    }).catch(function () { img.title = "No preview: istore did not answer"; });
  };

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
