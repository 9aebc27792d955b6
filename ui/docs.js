// Swagger UI on gaas's own OpenAPI document, with assets served by gaas (no CDN).
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#docs" });
