/* The public pages' card entry (issue 16): the processor's script (sandbox.js or Stripe.js,
   named by <meta name="processor">) mounts its own frame in [data-processor-mount]; on submit
   it turns what was typed there into a payment-method id, which fills the hidden
   payment_method field, and the form posts that id (never a card number). A page that comes
   back with [data-next-action] runs the processor's challenge, then posts its confirm form.
   Same DOM contract as portal/static/card-entry.js (design16 §1), which may replace it. */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="processor"]');
  var factory = meta && window[meta.dataset.factory];
  if (!factory) return;
  var client = factory(meta.dataset.key);

  document.querySelectorAll("form[data-card-entry]").forEach(function (form) {
    var mount = form.querySelector("[data-processor-mount]");
    var hidden = form.querySelector('input[name="payment_method"]');
    var error = form.querySelector("[data-processor-error]");
    var kind = form.dataset.cardEntry === "ach" ? "us_bank_account" : "card";
    var elements = client.elements({mode: form.dataset.cardEntry === "pay" ? "payment" : "setup",
                                     kind: kind});
    elements.create("payment").mount(mount);
    var busy = false;
    function show(text) { error.textContent = text; error.hidden = !text; }
    form.addEventListener("submit", function (event) {
      if (hidden.value) return;  // the processor's id is in: the form posts it
      event.preventDefault();
      if (busy) return;
      busy = true;
      show("");
      elements.submit().then(function (checked) {
        if (checked.error) throw checked.error;
        return client.createPaymentMethod({elements: elements, params: {billing_details: {}}});
      }).then(function (made) {
        if (made.error) throw made.error;
        hidden.value = made.paymentMethod.id;
        busy = false;
        if (form.requestSubmit) form.requestSubmit(); else form.submit();
      }).catch(function (problem) {
        busy = false;
        show((problem && problem.message) || "The card form didn't answer. Try again.");
      });
    });
  });

  var next = document.querySelector("form[data-next-action]");
  if (next) {
    client.handleNextAction({clientSecret: next.dataset.clientSecret}).then(function (answer) {
      var intent = answer.paymentIntent || answer.setupIntent;
      if (intent && intent.status === "requires_action") return;  // closed: the button stays
      next.submit();
    });
  }
})();
