"use strict";
// Sign in with JSON (the API refuses form posts), then open the dashboard.
document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  const body = {
    name: document.getElementById("name").value,
    password: document.getElementById("password").value,
  };
  try {
    const r = await fetch("/api/v1/auth/login", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (r.ok) { window.location.assign("/dashboard"); return; }
    error.textContent = r.status === 401 ? "Wrong user name or password." : `Sign-in failed (${r.status}).`;
  } catch (e) {
    error.textContent = "The server cannot be reached.";
  }
});
