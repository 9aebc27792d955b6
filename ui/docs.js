// Swagger UI on gaas's own OpenAPI document, with assets served by gaas (no CDN). "Authorize"
// signs in with the OAuth2 password flow on /token (user name and password, no client id);
// persistAuthorization keeps that token across reloads of this page.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#docs",
  persistAuthorization: true,
  deepLinking: true,
  docExpansion: "list",
  filter: true,
});
