// Log in: an API key exchanged for the session cookie (POST /api/v1/auth/login).

import { api } from '../api.js';
import { errorBox, h, show } from '../dom.js';
import { renderSession } from '../app.js';

export async function render(root, { query, navigate }) {
  const next = query.get('next');
  const safeNext = next && next.startsWith('/ui/') && !next.startsWith('/ui/login') ? next : '/ui/sweeps';
  const msg = h('div');
  const key = h('input', { type: 'password', name: 'api_key', id: 'api-key', autocomplete: 'current-password',
    placeholder: 'dev-key-…', required: true });
  const form = h('form', { class: 'card', id: 'login-form' },
    h('h1', {}, 'Log in'),
    h('p', { class: 'muted small' }, 'Use an API key. The gateway keeps you signed in with a session cookie for 7 days. ',
      'On the machine running ', h('code', {}, 'make run'), ' (standalone on loopback) the dashboard works without logging in; ',
      'elsewhere ask your operator for a key (', h('code', {}, 'hindsight-admin create-key TENANT'), ').'),
    h('label', {}, 'API key', key),
    h('div', { class: 'actions', style: { marginTop: '.8rem' } }, h('button', { type: 'submit', id: 'login-submit' }, 'Log in')),
    msg);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    show(msg, null);
    try {
      const out = await api('/api/v1/auth/login', { method: 'POST', json: { api_key: key.value.trim() } });
      sessionStorage.setItem('hindsight.tenant', out.tenant_id);
      renderSession();
      navigate(safeNext, { replace: true });
    } catch (err) {
      // One message: the 401's "Log in with an API key" hint would repeat what this page is.
      show(msg, errorBox(err.status === 401 ? new Error(err.message) : err));
    }
  });
  root.append(h('div', { class: 'login' }, form));
  key.focus();
}
