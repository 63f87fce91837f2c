// The dashboard's router: one shell page, a module per page, History API navigation.
// A page module exports render(root, ctx) and may return a cleanup function (close
// streams, stop timers) that runs when the user navigates away.

import { csrfToken, onUnauthorized } from './api.js';
import { clear, errorBox, h } from './dom.js';

const PAGES = [
  { re: /^\/ui\/?$/, section: 'sweeps', load: () => import('./pages/sweeps.js') },
  { re: /^\/ui\/sweeps\/?$/, section: 'sweeps', load: () => import('./pages/sweeps.js') },
  { re: /^\/ui\/walkforward\/?$/, section: 'walkforward', load: () => import('./pages/walkforward.js') },
  { re: /^\/ui\/days\/?$/, section: 'days', load: () => import('./pages/days.js') },
  { re: /^\/ui\/runs\/?$/, section: 'runs', load: () => import('./pages/runs.js') },
  { re: /^\/ui\/runs\/compare\/?$/, section: 'runs', load: () => import('./pages/compare.js') },
  { re: /^\/ui\/runs\/(\d+)\/?$/, section: 'runs', load: () => import('./pages/run_detail.js') },
  { re: /^\/ui\/jobs\/?$/, section: 'jobs', load: () => import('./pages/jobs.js') },
  { re: /^\/ui\/datasets\/?$/, section: 'datasets', load: () => import('./pages/datasets.js') },
  { re: /^\/ui\/login\/?$/, section: 'login', load: () => import('./pages/login.js') },
];

const root = document.getElementById('app');
let cleanup = null;
let renderSeq = 0;

// Content-Security-Policy violations are kept for the browser tests (and show in the console).
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (ev) => {
  window.__cspViolations.push(`${ev.violatedDirective} ${ev.blockedURI}`);
});

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState({}, '', url);
  else history.pushState({}, '', url);
  render();
}

function markNav(section) {
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.section === section);
}

function renderSession() {
  const box = document.getElementById('session');
  clear(box);
  const tenant = sessionStorage.getItem('hindsight.tenant');
  if (tenant) {
    box.append(h('span', {}, `tenant ${tenant}`), ' ',
      h('button', { class: 'link', id: 'logout', onclick: async () => {
        await fetch('/api/v1/auth/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrfToken() } });
        sessionStorage.removeItem('hindsight.tenant');
        renderSession();
        navigate('/ui/login');
      } }, 'Log out'));
  } else {
    const link = h('a', { href: '/ui/login', 'data-link': true, id: 'login-link' }, 'Log in');
    box.append(link);
    // Standalone on loopback needs no login: say so instead of offering one.
    fetch('/api/v1/auth/whoami', { credentials: 'same-origin' })
      .then((r) => (r.ok ? r.json() : null))
      .then((me) => {
        if (me && me.dev_access && !sessionStorage.getItem('hindsight.tenant')) {
          clear(box).append(h('span', { id: 'dev-access', title: 'standalone on loopback: requests without a key act as the dev tenant' },
            `tenant ${me.tenant_id} (no login needed)`));
        }
      })
      .catch(() => {});
  }
}
export { renderSession };

async function render() {
  const seq = ++renderSeq;
  if (cleanup) { try { cleanup(); } catch { /* page already gone */ } cleanup = null; }
  const path = location.pathname;
  const page = PAGES.find((p) => p.re.test(path));
  markNav(page ? page.section : '');
  renderSession();
  clear(root);
  if (!page) {
    root.append(h('h1', {}, 'Page not found'), h('p', {}, 'Nothing lives at ', h('code', {}, path), '. ',
      h('a', { href: '/ui/sweeps', 'data-link': true }, 'Go to sweeps'), '.'));
    return;
  }
  const params = path.match(page.re).slice(1);
  try {
    const mod = await page.load();
    if (seq !== renderSeq) return;
    const ctx = { params, query: new URLSearchParams(location.search), navigate };
    const out = await mod.render(root, ctx);
    if (seq !== renderSeq) { if (typeof out === 'function') out(); return; }
    cleanup = typeof out === 'function' ? out : null;
  } catch (err) {
    if (seq !== renderSeq) return;
    root.append(errorBox(err));
  }
}

// Same-origin links marked data-link (or any link under /ui/) navigate without a reload.
document.addEventListener('click', (ev) => {
  const a = ev.target.closest('a');
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || a.target) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/ui/') || a.hasAttribute('download')) return;
  ev.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', render);

onUnauthorized(() => {
  sessionStorage.removeItem('hindsight.tenant');
  if (!location.pathname.startsWith('/ui/login')) {
    navigate(`/ui/login?next=${encodeURIComponent(location.pathname + location.search)}`, { replace: true });
  }
});

render();
