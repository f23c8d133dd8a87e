// Preferences kept in the browser: the theme (system, light, dark) and notifications of new
// mail while the tab is in the background.

import { $, addressText } from './dom.js';
import { goMessage } from './message.js';
import { toast } from './state.js';

const THEMES = ['system', 'light', 'dark'];
export function applyTheme(theme) {
  if (theme === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
  const label = { system: 'Theme: follows the system', light: 'Theme: light', dark: 'Theme: dark' }[theme];
  const b = $('#theme-btn');
  b.title = label;
  b.setAttribute('aria-label', label);
  b.dataset.theme = theme;
}

function notifyEnabled() {
  return localStorage.getItem('mp.notify') === '1' && 'Notification' in window && Notification.permission === 'granted';
}

export function updateNotifyButton() {
  const on = notifyEnabled();
  const b = $('#notify-btn');
  b.setAttribute('aria-pressed', on ? 'true' : 'false');
  b.title = on ? 'Notifications for new mail are on' : 'Turn on notifications for new mail';
}

export function notify(m) {
  if (!notifyEnabled() || (!document.hidden && document.hasFocus())) return;
  try {
    const n = new Notification(m.Subject || '(no subject)', {
      body: `From ${addressText(m.From)}`,
      tag: m.ID,
      icon: $('#favicon')?.href,
    });
    n.onclick = () => {
      window.focus();
      goMessage(m.ID);
      n.close();
    };
  } catch {
    /* some browsers only allow notifications from a service worker */
  }
}

export function wirePrefs() {
  $('#theme-btn').addEventListener('click', () => {
    const cur = localStorage.getItem('mp.theme') || 'system';
    const next = THEMES[(THEMES.indexOf(cur) + 1) % THEMES.length];
    localStorage.setItem('mp.theme', next);
    applyTheme(next);
  });
  $('#notify-btn').addEventListener('click', async () => {
    if (!('Notification' in window)) {
      toast('This browser does not support notifications');
      return;
    }
    if (notifyEnabled()) {
      localStorage.setItem('mp.notify', '0');
    } else {
      const p = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
      localStorage.setItem('mp.notify', p === 'granted' ? '1' : '0');
      if (p !== 'granted') toast('Notifications are blocked by the browser');
    }
    updateNotifyButton();
  });
}
