// Starts Swagger UI on this gateway's own document. A file of its own so that the page's
// Content-Security-Policy can forbid inline scripts.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // No badge from an outside validator: the page talks to this origin only.
    validatorUrl: null,
  });
});
