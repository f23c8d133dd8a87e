// The live connection: the /api/events websocket, reconnecting with backoff, and polling the
// REST API while it is down. State: 'live' (websocket open), 'polling' (HTTP works, websocket
// does not) or 'offline' (nothing answers).

import { eventsUrl } from './api.js';

const MIN_DELAY = 500;
const MAX_DELAY = 5000;
const POLL_EVERY = 2000;

export class Live {
  constructor({ onEvent, onState, poll }) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.poll = poll; // async () => void; refreshes the view from the REST API
    this.state = '';
    this.delay = MIN_DELAY;
    this.ws = null;
    this.retryTimer = 0;
    this.pollTimer = 0;
    this.wasLive = false;
  }

  start() {
    this.setState('connecting');
    this.connect();
    window.addEventListener('online', () => this.retryNow());
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && this.state !== 'live') this.retryNow();
    });
  }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.ws) return;
    let ws;
    try {
      ws = new WebSocket(eventsUrl());
    } catch {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    let opened = false;
    let subscribed = false;
    ws.onopen = () => {
      opened = true;
      this.delay = MIN_DELAY;
    };
    ws.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!subscribed) {
        // The server's first frame (stats) comes once it is subscribed: only from here on is
        // no change missed. Reload the view once to catch what happened before that moment.
        subscribed = true;
        this.stopPolling();
        this.setState('live');
        this.poll().catch(() => {});
        this.wasLive = true;
        this.missed = false;
      }
      this.onEvent(frame);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.missed = true;
      if (opened || this.state === 'live' || this.state === 'connecting') this.setState('polling');
      this.startPolling();
      this.scheduleRetry();
    };
    ws.onerror = () => {};
  }

  scheduleRetry() {
    clearTimeout(this.retryTimer);
    const jitter = this.delay * (0.8 + Math.random() * 0.4);
    this.retryTimer = setTimeout(() => this.connect(), jitter);
    this.delay = Math.min(this.delay * 2, MAX_DELAY);
  }

  retryNow() {
    this.delay = MIN_DELAY;
    if (!this.ws) this.connect();
  }

  startPolling() {
    if (this.pollTimer) return;
    const tick = async () => {
      if (this.state === 'live') return;
      let ok = false;
      try {
        await this.poll();
        ok = true;
      } catch {
        ok = false;
      }
      if (this.state === 'live') return;
      const before = this.state;
      this.setState(ok ? 'polling' : 'offline');
      // The server answers again: try the websocket at once instead of waiting out the backoff.
      if (ok && before === 'offline') this.retryNow();
      this.pollTimer = setTimeout(tick, POLL_EVERY);
    };
    this.pollTimer = setTimeout(tick, 0);
  }

  stopPolling() {
    clearTimeout(this.pollTimer);
    this.pollTimer = 0;
  }
}

