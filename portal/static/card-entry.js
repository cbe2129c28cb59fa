/* Card entry on the processor's own form (issue 16), for either gateway: the sandbox's
   sandbox.js (SandboxStripe) or Stripe.js (Stripe), named by the page's data attributes.

   <form data-card-entry data-kind="card|us_bank_account" data-processor-script=…
         data-processor-factory=… data-processor-key=…>
     <div data-card-entry-mount></div>            the processor's frame goes here
     <p data-card-entry-error hidden></p>          its messages
     <input type="hidden" name="payment_method">   the only thing the portal receives
   </form>
   Sending the form first asks the processor for a payment-method id (the card stays in the
   processor's frame), puts it in payment_method, then sends the form as it would have been
   (htmx or not, through requestSubmit).

   <div data-next-action data-client-secret=… data-processor-…>
     <form data-next-action-done …></form>
   </div>
   The processor's challenge (3-D Secure) for an intent waiting for it; whatever the
   outcome, the form is then sent and the portal reads the answer from the processor. */
(function () {
  "use strict";
  if (window.CardEntry) return;

  var loading = {};
  function processor(holder) {
    var url = holder.dataset.processorScript;
    var factory = holder.dataset.processorFactory;
    if (!loading[url]) {
      loading[url] = new Promise(function (resolve, reject) {
        if (window[factory]) { resolve(); return; }
        var script = document.createElement("script");
        script.src = url;
        script.onload = function () { resolve(); };
        script.onerror = function () { reject(new Error("not loaded")); };
        document.head.appendChild(script);
      });
    }
    return loading[url].then(function () {
      return window[factory](holder.dataset.processorKey);
    });
  }

  function showError(form, message) {
    var error = form.querySelector("[data-card-entry-error]");
    if (!error) return;
    error.textContent = message || "";
    error.hidden = !message;
  }

  function mount(form) {
    if (form.cardEntry) return;
    var state = {ready: null, elements: null, client: null, busy: false};
    form.cardEntry = state;
    form.querySelectorAll("[data-card-entry-needs-js]").forEach(function (p) { p.hidden = true; });
    state.ready = processor(form).then(function (client) {
      state.client = client;
      state.elements = client.elements({mode: "setup", kind: form.dataset.kind || "card"});
      var host = form.querySelector("[data-card-entry-mount]");
      state.elements.create("payment").mount(host);
      escapeCloses(form, host.querySelector("iframe"));
    }).catch(function () {
      showError(form, "Our payment processor's form could not be loaded. Reload the page " +
                      "and try again.");
    });
  }

  /* Escape typed in the processor's frame closes the dialog around the form, as it does
     everywhere else in the dialog (a same-origin frame, the sandbox's; a cross-origin
     frame keeps its keys to itself). */
  function escapeCloses(form, frame) {
    var dialog = form.closest("dialog");
    if (!dialog || !frame) return;
    function hook() {
      try {
        frame.contentWindow.document.addEventListener("keydown", function (event) {
          if (event.key === "Escape" && dialog.open) {
            event.preventDefault();
            dialog.close();
          }
        });
      } catch (e) { /* another origin's frame */ }
    }
    frame.addEventListener("load", hook);
  }

  function submitted(event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.matches("[data-card-entry]")) return;
    var field = form.querySelector("input[name=payment_method]");
    if (!field || field.value) return;  // the id is in: let the form go
    event.preventDefault();
    event.stopImmediatePropagation();
    var state = form.cardEntry;
    if (!state || state.busy) return;
    state.busy = true;
    var submitter = event.submitter || null;
    var buttons = form.querySelectorAll("button[type=submit]");
    buttons.forEach(function (b) { b.disabled = true; });
    function done(message) {
      state.busy = false;
      buttons.forEach(function (b) { b.disabled = false; });
      showError(form, message);
    }
    state.ready.then(function () {
      if (!state.elements) return done("Our payment processor's form could not be loaded.");
      return state.elements.submit().then(function (checked) {
        if (checked && checked.error) return done(checked.error.message);
        return state.client.createPaymentMethod({
          elements: state.elements,
          params: {billing_details: {name: form.dataset.holder || ""}}
        }).then(function (answer) {
          if (!answer || answer.error || !answer.paymentMethod) {
            return done((answer && answer.error && answer.error.message) ||
                        "The details were not accepted.");
          }
          showError(form, "");
          field.value = answer.paymentMethod.id;
          state.busy = false;
          buttons.forEach(function (b) { b.disabled = false; });
          if (submitter && submitter.form === form) form.requestSubmit(submitter);
          else form.requestSubmit();
        });
      });
    }).catch(function () { done("Something went wrong: try again."); });
  }

  function challenge(holder) {
    if (holder.cardEntryStarted) return;
    holder.cardEntryStarted = true;
    var form = holder.querySelector("form[data-next-action-done]");
    function finish() { if (form && form.isConnected) form.requestSubmit(); }
    processor(holder).then(function (client) {
      return client.handleNextAction({clientSecret: holder.dataset.clientSecret});
    }).then(finish, finish);
  }

  function scan(root) {
    var scope = root && root.querySelectorAll ? root : document;
    scope.querySelectorAll("form[data-card-entry]").forEach(mount);
    scope.querySelectorAll("[data-next-action]").forEach(challenge);
    if (scope.matches && scope.matches("form[data-card-entry]")) mount(scope);
    if (scope.matches && scope.matches("[data-next-action]")) challenge(scope);
  }

  document.addEventListener("submit", submitted, true);
  document.addEventListener("htmx:afterSettle", function (event) { scan(event.target); });
  window.CardEntry = {scan: scan};
  scan(document);
})();
