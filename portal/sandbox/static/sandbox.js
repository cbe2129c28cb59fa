/* The sandbox processor's script (issue 16): window.SandboxStripe(publishableKey), the small
   subset of Stripe.js the portal's card-entry pages call, served by the sandbox itself (no
   network):
     var stripe = SandboxStripe("pk_sandbox");
     var elements = stripe.elements({mode: "setup", kind: "card" | "us_bank_account"});
     elements.create("payment").mount("#card-element");    // the sandbox's form, in a frame
     elements.submit()                      -> {} or {error: {code, message}}
     stripe.createPaymentMethod({elements, params: {billing_details: {name}}})
                                            -> {paymentMethod: {id, type}} or {error}
     stripe.handleNextAction({clientSecret}) -> {paymentIntent|setupIntent: {id, status}}
                                                (+ error when not succeeded)
   The card number stays in the frame; only ids and messages cross to this page, through
   postMessage checked on both sides (our origin, the frame's window). */
(function () {
  "use strict";
  var script = document.currentScript;
  var BASE = new URL(".", script ? script.src : window.location.href);
  var ORIGIN = BASE.origin;
  var sequence = 0;

  function listen(frame, handle) {
    function onMessage(event) {
      if (event.origin !== ORIGIN || !frame.contentWindow ||
          event.source !== frame.contentWindow) return;
      handle(event.data || {}, stop);
    }
    function stop() { window.removeEventListener("message", onMessage); }
    window.addEventListener("message", onMessage);
    return stop;
  }

  function ask(element, message) {
    return element.ready.then(function () {
      return new Promise(function (resolve) {
        var id = ++sequence;
        listen(element.frame, function (data, stop) {
          if (data.type !== "sandbox:reply" || data.reply !== id) return;
          stop();
          resolve(data);
        });
        message.id = id;
        element.frame.contentWindow.postMessage(message, ORIGIN);
      });
    });
  }

  function theme(options) {
    var wanted = options && options.appearance && options.appearance.theme;
    if (wanted) return wanted === "night" ? "dark" : "light";
    return document.documentElement.dataset.theme === "dark" ? "dark" : "light";
  }

  function PaymentElement(elements) {
    this.elements = elements;
    this.frame = null;
    var self = this;
    this.ready = new Promise(function (resolve) { self._ready = resolve; });
  }

  PaymentElement.prototype.mount = function (target) {
    var host = typeof target === "string" ? document.querySelector(target) : target;
    if (!host) throw new Error("SandboxStripe: nothing to mount the payment element on");
    var frame = document.createElement("iframe");
    var kind = this.elements.kind;
    frame.src = new URL("elements/" + kind + "?theme=" + this.elements.theme, BASE).href;
    frame.title = kind === "card" ? "Secure card entry" : "Secure bank account entry";
    frame.className = "sandbox-element";
    frame.style.width = "100%";
    frame.style.border = "0";
    frame.style.display = "block";
    frame.style.height = kind === "card" ? "250px" : "330px";
    frame.setAttribute("allowtransparency", "true");
    var self = this;
    listen(frame, function (data) {
      if (data.type === "sandbox:ready") self._ready();
      else if (data.type === "sandbox:resize" && data.height > 0)
        frame.style.height = Math.ceil(data.height) + "px";
    });
    this.frame = frame;
    host.appendChild(frame);
    return this;
  };

  PaymentElement.prototype.destroy = function () {
    if (this.frame) this.frame.remove();
    this.frame = null;
  };

  PaymentElement.prototype.focus = function () {
    if (this.frame) this.frame.focus();
  };

  function Elements(options) {
    var kind = options && options.kind;
    this.kind = kind === "us_bank_account" || kind === "ach" ? "us_bank_account" : "card";
    this.mode = (options && options.mode) || "setup";
    this.theme = theme(options);
    this.element = null;
  }

  Elements.prototype.create = function (type) {
    if (type !== "payment") throw new Error("SandboxStripe: only the payment element exists");
    this.element = new PaymentElement(this);
    return this.element;
  };

  Elements.prototype.getElement = function () { return this.element; };

  Elements.prototype.submit = function () {
    if (!this.element) return Promise.resolve({error: {code: "no_element",
                                                       message: "Nothing to submit."}});
    return ask(this.element, {type: "sandbox:validate"}).then(function (data) {
      return data.error ? {error: data.error} : {};
    });
  };

  function Client(publishableKey) {
    if (!(this instanceof Client)) return new Client(publishableKey);
    this.key = publishableKey;
  }

  Client.prototype.elements = function (options) { return new Elements(options); };

  Client.prototype.createPaymentMethod = function (options) {
    var elements = options && options.elements;
    var element = elements && elements.element;
    if (!element) return Promise.resolve({error: {code: "no_element",
                                                  message: "Nothing to submit."}});
    var details = (options.params && options.params.billing_details) || {};
    return ask(element, {type: "sandbox:create", name: details.name || ""}).then(
      function (data) {
        if (data.error || !data.id) return {error: data.error};
        return {paymentMethod: {id: data.id, object: "payment_method",
                                type: data.paymentMethodType}};
      });
  };

  /* The 3-D Secure challenge of an intent waiting for it, in a modal dialog. */
  Client.prototype.handleNextAction = function (options) {
    var secret = (options && options.clientSecret) || "";
    var intent = secret.split("_secret_")[0];
    var key = intent.indexOf("seti_") === 0 ? "setupIntent" : "paymentIntent";
    return new Promise(function (resolve) {
      var dialog = document.createElement("dialog");
      dialog.className = "sandbox-challenge";
      dialog.setAttribute("aria-label", "Confirm it's you");
      dialog.style.padding = "0";
      dialog.style.border = "1px solid rgba(0, 0, 0, 0.25)";
      dialog.style.borderRadius = "10px";
      dialog.style.overflow = "hidden";
      dialog.style.boxShadow = "0 12px 32px rgba(0, 0, 0, 0.25)";
      var frame = document.createElement("iframe");
      frame.title = "Your bank's check";
      frame.src = new URL("authenticate/" + encodeURIComponent(intent) + "?client_secret=" +
                          encodeURIComponent(secret), BASE).href;
      frame.style.width = "min(440px, 86vw)";
      frame.style.height = "330px";
      frame.style.border = "0";
      frame.style.display = "block";
      dialog.appendChild(frame);
      var done = false;
      function finish(status) {
        if (done) return;
        done = true;
        stop();
        dialog.close();
        dialog.remove();
        var answer = {};
        answer[key] = {id: intent, status: status};
        if (status !== "succeeded") {
          answer.error = status === "requires_action"
            ? {code: "authentication_abandoned",
               message: "The authentication was not completed."}
            : {code: "authentication_failed",
               message: "The card's bank couldn't confirm it was you."};
        }
        resolve(answer);
      }
      var stop = listen(frame, function (data) {
        if (data.type === "sandbox:action-done" && data.intent === intent) {
          finish(data.status === "succeeded" ? "succeeded" : "failed");
        }
      });
      dialog.addEventListener("cancel", function () { finish("requires_action"); });
      document.body.appendChild(dialog);
      dialog.showModal();
    });
  };

  window.SandboxStripe = Client;
})();
