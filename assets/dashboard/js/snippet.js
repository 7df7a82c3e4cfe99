// A website's tracking snippet with its copy button (the websites list and a site's page).
import { copyButton } from './clipboard.js';

/**
 * Fills the `.snippet-code`, `.snippet-copy` and `.snippet-status` elements inside `root`
 * (and `.snippet-domain`, when present) for `website`.
 */
export function fillSnippet(root, website) {
  const code = root.querySelector('.snippet-code');
  const button = root.querySelector('.snippet-copy');
  code.textContent = website.trackingSnippet;
  button.setAttribute('aria-label', `Copy the tracking snippet of ${website.name}`);
  copyButton(button, () => code.textContent, root.querySelector('.snippet-status'));
  const domain = root.querySelector('.snippet-domain');
  if (domain) domain.textContent = website.domain;
}
