// Copy buttons: the only script of the admin page. Without it the values
// stay in read-only fields to select by hand, and the buttons stay hidden.
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var field = document.getElementById(button.getAttribute("data-copy"));
  if (!field) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    var done = function () {
      button.textContent = "Copied";
      button.classList.add("copied");
      setTimeout(function () { button.textContent = "Copy"; button.classList.remove("copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(done, function () { field.select(); });
    } else {
      field.select();
      document.execCommand("copy") && done();
    }
  });
});

// After a form, the page opens at the section the form was in; its message is
// at the top of that section. Move focus there so a screen reader reads it.
(function () {
  var message = document.querySelector("[data-flash]");
  if (message && location.hash) message.focus({ preventScroll: true });
})();
