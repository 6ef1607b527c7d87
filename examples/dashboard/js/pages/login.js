// The sign-in page: organization, email, password. The tokens land in HttpOnly cookies;
// this page never sees them.

import * as api from "../api.js";
import {h, replace} from "../dom.js";

export function render(main, {onSignedIn}) {
  const error = h("p", {class: "form-error", id: "login-error", role: "alert", hidden: true});
  const field = (label, attrs) => h("label", {}, label, h("input", {required: true, ...attrs}));
  const form = h("form", {class: "login", "aria-describedby": "login-error", novalidate: false},
    h("h1", {}, "Sign in to ATE"),
    field("Organization", {name: "tenant", autocomplete: "organization", placeholder: "acme", autofocus: true}),
    field("Email", {name: "email", type: "email", autocomplete: "username"}),
    field("Password", {name: "password", type: "password", autocomplete: "current-password"}),
    error,
    h("button", {type: "submit", class: "primary"}, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const button = form.querySelector("button");
    button.disabled = true;
    error.hidden = true;
    try {
      await api.signIn(String(data.get("tenant")).trim(), String(data.get("email")).trim(), String(data.get("password")));
      onSignedIn();
    } catch (e) {
      error.hidden = false;
      error.textContent = e instanceof api.ApiError && e.status === 401
        ? "The organization, email or password is wrong (or the account is locked)."
        : e.message;
      form.querySelector("[name=password]").value = "";
    } finally {
      button.disabled = false;
    }
  });
  replace(main, h("section", {class: "login-wrap"}, form));
}
