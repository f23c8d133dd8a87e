// Tags edited as chips: Enter or a comma adds the typed tag, a chip's × or Backspace in the empty
// field removes one, and the field suggests the tags already in use (GET /api/v1/tags).
// One editor lives in the tag dialog; openTags() fills it for one message or for many.

import { api } from './api.js';
import { $, h } from './dom.js';

let chips = []; // the tags in the editor, in the order typed

function norm(t) {
  return t.replace(/\s+/g, ' ').trim();
}

function has(tag) {
  const low = tag.toLowerCase();
  return chips.some((c) => c.toLowerCase() === low);
}

function render() {
  const box = $('#tag-chips');
  box.replaceChildren(
    ...chips.map((t, i) =>
      h(
        'li',
        { class: 'chip' },
        h('span', { text: t }),
        h('button', {
          type: 'button',
          class: 'chip-x',
          'aria-label': `Remove tag ${t}`,
          title: `Remove ${t}`,
          text: '×',
          onclick: () => {
            chips.splice(i, 1);
            render();
            $('#tag-input').focus();
          },
        }),
      ),
    ),
  );
  $('#tag-empty').hidden = chips.length > 0;
}

function add(text) {
  let changed = false;
  for (const part of text.split(',')) {
    const t = norm(part);
    if (t && !has(t)) {
      chips.push(t);
      changed = true;
    }
  }
  if (changed) render();
}

// What the editor holds, with what is still typed in the field.
export function takeTags() {
  const input = $('#tag-input');
  add(input.value);
  input.value = '';
  return [...chips];
}

export function wireTagChips() {
  const input = $('#tag-input');
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ',') {
      e.preventDefault();
      // Enter in an empty field saves (the form's default button would be Cancel, its first).
      if (e.key === 'Enter' && !input.value.trim()) $('#tag-save').click();
      add(input.value);
      input.value = '';
    } else if (e.key === 'Backspace' && input.value === '' && chips.length) {
      e.preventDefault();
      chips.pop();
      render();
    }
  });
  // Typed or pasted text with commas: every finished part becomes a chip; a suggestion picked
  // from the list (the browser replaces the text) is a whole tag.
  input.addEventListener('input', (e) => {
    if (e.inputType === 'insertReplacementText' || e.inputType === undefined) {
      add(input.value);
      input.value = '';
      return;
    }
    const i = input.value.lastIndexOf(',');
    if (i < 0) return;
    add(input.value.slice(0, i));
    input.value = input.value.slice(i + 1).trimStart();
  });
}

// Shows the tag dialog: `tags` to start from; resolves with the tags, or null when cancelled.
export async function openTags({ title, label, tags = [] }) {
  const dlg = $('#tag-dialog');
  $('#tag-title').textContent = title;
  $('#tag-label').textContent = label;
  chips = [...tags];
  render();
  $('#tag-input').value = '';
  api
    .tags()
    .then((all) => $('#tag-options').replaceChildren(...all.map((t) => h('option', { value: t }))))
    .catch(() => {});
  dlg.returnValue = '';
  dlg.showModal();
  $('#tag-input').focus();
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok' ? takeTags() : null), { once: true });
  });
}
