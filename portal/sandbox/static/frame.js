/* The sandbox processor's frames (issue 16): the card / bank-account entry frame and the
   3-D Secure page. Runs inside the iframes that sandbox.js inserts. Messages go to and come
   from the parent page of our own origin only (event.origin and event.source are checked);
   they carry ids and messages, never a card or account number. */
(function () {
  "use strict";
  var ORIGIN = window.location.origin;
  var root = document.querySelector("[data-sandbox-frame]");
  if (!root) return;

  function toParent(message) {
    if (window.parent !== window) window.parent.postMessage(message, ORIGIN);
  }

  if (root.dataset.sandboxFrame === "done") {
    toParent({type: "sandbox:action-done", intent: root.dataset.intent,
              status: root.dataset.status});
    return;
  }
  if (root.dataset.sandboxFrame !== "element") return;

  var kind = root.dataset.kind;
  var form = document.getElementById("sbx-form");
  var field = function (id) { return document.getElementById("sbx-" + id); };

  function digits(value) { return (value || "").replace(/[\s-]/g, ""); }

  function luhn(number) {
    var total = 0;
    for (var i = 0; i < number.length; i++) {
      var d = Number(number[number.length - 1 - i]);
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      total += d;
    }
    return total % 10 === 0;
  }

  function expiry(value) {
    var match = /^\s*(\d{1,2})\s*\/\s*(\d{2}|\d{4})\s*$/.exec(value || "");
    if (!match) return null;
    var year = Number(match[2]);
    return {month: Number(match[1]), year: year < 100 ? 2000 + year : year};
  }

  function show(id, message) {
    var input = field(id);
    var error = field(id + "-error");
    if (!input || !error) return;
    error.textContent = message || "";
    error.hidden = !message;
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  /* The checks a processor's form makes before sending anything: {field: message}. */
  function check(name) {
    var errors = {};
    var holder = field("name").value.trim() || (name || "").trim();
    if (kind === "card") {
      if (!holder) errors.name = "Enter the name on the card.";
      var number = digits(field("number").value);
      if (!number) errors.number = "Enter the card number.";
      else if (!/^[0-9]+$/.test(number)) errors.number = "The card number has only digits.";
      else if (number.length < 12 || number.length > 19 || !luhn(number))
        errors.number = "This card number isn't valid: check the digits.";
      var exp = expiry(field("exp").value);
      var today = new Date();
      if (!exp || exp.month < 1 || exp.month > 12)
        errors.exp = "Enter the expiry as MM/YY, like 12/29.";
      else if (exp.year * 12 + exp.month < today.getFullYear() * 12 + today.getMonth() + 1)
        errors.exp = "This card has expired.";
      var cvc = field("cvc").value.trim();
      if (!/^[0-9]{3,4}$/.test(cvc))
        errors.cvc = "The security code is 4 digits on American Express cards and 3 on others.";
    } else {
      if (!holder) errors.name = "Enter the account holder's name.";
      var routing = digits(field("routing").value);
      if (!/^[0-9]{9}$/.test(routing)) errors.routing = "Enter the 9-digit routing number.";
      var account = digits(field("account").value);
      if (!/^[0-9]{4,17}$/.test(account)) errors.account = "An account number has 4 to 17 digits.";
      if (!field("mandate").checked)
        errors.mandate = "Check the box to authorize debits from this account.";
    }
    return errors;
  }

  function showAll(errors) {
    var ids = kind === "card" ? ["name", "number", "exp", "cvc"]
                              : ["name", "routing", "account", "mandate"];
    ids.forEach(function (id) { show(id, errors[id]); });
    var first = ids.filter(function (id) { return errors[id]; })[0];
    if (first) {
      field(first).focus();
      return {code: "validation_error", message: errors[first]};
    }
    return null;
  }

  function body(name) {
    var params = new URLSearchParams();
    var holder = field("name").value.trim() || (name || "").trim();
    params.set("billing_details[name]", holder);
    if (kind === "card") {
      var exp = expiry(field("exp").value);
      params.set("type", "card");
      params.set("card[number]", digits(field("number").value));
      params.set("card[exp_month]", String(exp.month));
      params.set("card[exp_year]", String(exp.year));
      params.set("card[cvc]", field("cvc").value.trim());
    } else {
      params.set("type", "us_bank_account");
      params.set("us_bank_account[routing_number]", digits(field("routing").value));
      params.set("us_bank_account[account_number]", digits(field("account").value));
      params.set("us_bank_account[account_holder_type]", "individual");
    }
    return params;
  }

  /* The server's refusal shown beside its field: Stripe's error.param names it. */
  var PARAM_FIELD = {
    "billing_details[name]": "name", "card[number]": "number", "card[exp_month]": "exp",
    "card[exp_year]": "exp", "card[cvc]": "cvc",
    "us_bank_account[routing_number]": "routing", "us_bank_account[account_number]": "account"
  };

  function create(name) {
    var error = showAll(check(name));
    if (error) return Promise.resolve({error: error});
    return fetch(root.dataset.endpoint, {
      method: "POST", body: body(name), credentials: "same-origin",
      headers: {"Accept": "application/json"}
    }).then(function (response) {
      return response.json().then(function (answer) {
        if (response.ok) return {id: answer.id, type: answer.type};
        var problem = answer.error || {};
        var at = PARAM_FIELD[problem.param];
        if (at) { show(at, problem.message); field(at).focus(); }
        return {error: {code: problem.code || "api_error",
                        message: problem.message || "The card couldn't be saved."}};
      });
    }).catch(function () {
      return {error: {code: "api_connection_error",
                      message: "The payment form couldn't reach the processor. Try again."}};
    });
  }

  window.addEventListener("message", function (event) {
    if (event.origin !== ORIGIN || event.source !== window.parent) return;
    var data = event.data || {};
    if (data.type === "sandbox:validate") {
      var error = showAll(check(data.name));
      toParent({type: "sandbox:reply", reply: data.id, error: error});
    } else if (data.type === "sandbox:create") {
      create(data.name).then(function (answer) {
        toParent({type: "sandbox:reply", reply: data.id, id: answer.id || null,
                  paymentMethodType: answer.type || null, error: answer.error || null});
      });
    }
  });

  form.addEventListener("submit", function (event) { event.preventDefault(); });
  form.addEventListener("input", function (event) {
    var id = (event.target.id || "").replace(/^sbx-/, "");
    if (field(id + "-error") && !field(id + "-error").hidden) show(id, "");
  });

  function size() {
    toParent({type: "sandbox:resize", height: document.documentElement.scrollHeight});
  }
  if (window.ResizeObserver) new ResizeObserver(size).observe(document.body);
  size();
  toParent({type: "sandbox:ready"});
})();
