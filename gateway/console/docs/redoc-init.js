// ReDoc start-up; the system font stack keeps the page from asking for web fonts.
window.Redoc.init(
  "/openapi.json",
  { theme: { typography: { fontFamily: "system-ui, sans-serif", headings: { fontFamily: "system-ui, sans-serif" } } } },
  document.getElementById("redoc"),
);
