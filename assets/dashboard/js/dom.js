// DOM helpers for pages rendered from <template> elements in app.html.

export function cloneTemplate(id) {
  return document.getElementById(id).content.cloneNode(true);
}

export function setTitle(title) {
  document.title = title ? `${title} · Jetrack` : 'Jetrack';
}

/**
 * Creates an element: el('td', {className: 'mono', dataset: {label: 'Key'}}, 'text', child).
 * Properties are assigned (so text is never parsed as HTML); `dataset` is merged and `attrs`
 * set as attributes ({'aria-label': …}).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'attrs') Object.entries(value).forEach(([name, v]) => node.setAttribute(name, v));
    else node[key] = value;
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}
