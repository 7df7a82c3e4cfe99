// DOM helpers for pages rendered from <template> elements in app.html.

export function cloneTemplate(id) {
  return document.getElementById(id).content.cloneNode(true);
}

export function setTitle(title) {
  document.title = title ? `${title} · Jetrack` : 'Jetrack';
}
