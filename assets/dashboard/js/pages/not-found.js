import { cloneTemplate, setTitle } from '../dom.js';

export function renderNotFound(outlet) {
  setTitle('Page not found');
  outlet.append(cloneTemplate('tpl-not-found'));
}
