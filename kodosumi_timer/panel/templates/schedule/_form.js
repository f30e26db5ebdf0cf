/* The schedule form (new and edit). Everything goes through the JSON API:
   GET /flow and the flow's own form, POST /schedule/preview, POST or PUT /schedule/.
   Included into a Jinja template: never two opening braces in a row here. */
const $ = (id) => document.getElementById(id);
const FIELD_BOXES = {
    flow_url: 'field-flow_url', title: 'field-title', schedule_type: 'field-schedule_type',
    run_at: 'field-run_at', cron_expression: 'field-cron_expression', timezone: 'field-timezone',
    end_at: 'field-end_at', max_runs: 'field-max_runs', catchup: 'field-catchup',
    overlap: 'field-overlap', weekdays: 'field-weekdays', inputs: 'field-inputs-json',
    catchup_window: 'field-catchup_window',
};
const FIELD_FOCUS = {
    flow_url: 'flow', title: 'title', run_at: 'run-date', cron_expression: 'cron',
    timezone: 'timezone', end_at: 'end-at', max_runs: 'max-runs', schedule_type: 'kind-once',
    inputs: 'inputs-json', catchup_window: 'catchup-window',
};
const ADVANCED = new Set(['end_at', 'max_runs', 'catchup', 'overlap', 'catchup_window']);

let flows = [];
let elements = [];          /* the chosen agent's form elements */
let inputsView = 'form';
let extraInputs = {};       /* saved inputs the agent's form does not show (kept as they are) */
let previewTimer = null;
let previewSeq = 0;
let timingAtLoad = null;
let flowAtLoad = null;

/* ------------------------------------------------------------------ errors */

function clearErrors(keys) {
    const all = keys || [...Object.keys(FIELD_BOXES), '_global'];
    for (const key of all) {
        if (key === '_global') {
            $('form-error').hidden = true;
            continue;
        }
        const slot = $('err-' + key);
        if (slot) slot.textContent = '';
        const box = $(FIELD_BOXES[key]);
        if (box) box.classList.remove('invalid', 'invalid-box');
    }
    if (!keys) {
        for (const slot of document.querySelectorAll('#agent-form .fld-error')) slot.textContent = '';
        for (const box of document.querySelectorAll('#agent-form .invalid')) box.classList.remove('invalid');
    }
}

function showInputError(name, message, focus) {
    /* the API names an agent's field as inputs.<name>: show it at that field */
    const slot = document.getElementById('err-in-' + name);
    const input = document.getElementById('in-' + name);
    if (inputsView !== 'form' || !slot || !input) return false;
    slot.textContent = message;
    const box = input.closest('.field');
    if (box) box.classList.add('invalid');
    if (focus) {
        input.scrollIntoView({ block: 'center' });
        input.focus({ preventScroll: true });
    }
    return true;
}

function showError(field, message, focus) {
    let key = field || '';
    if (key.startsWith('inputs.') && showInputError(key.slice(7), message, focus)) return;
    if (key.startsWith('inputs')) key = 'inputs';
    if (key === 'run_at') setKind('once');
    if (key === 'cron_expression') setKind('cron');
    if (ADVANCED.has(key)) $('advanced').open = true;
    const slot = $('err-' + key);
    if (!slot) {
        $('form-error-text').textContent = message;
        $('form-error').hidden = false;
        if (focus) $('form-error').scrollIntoView({ block: 'center' });
        return;
    }
    slot.textContent = message;
    /* the agent's own fields carry their messages; the JSON editor is marked as a whole */
    const box = key === 'inputs' && inputsView !== 'json' ? null : $(FIELD_BOXES[key]);
    if (box) box.classList.add(box.classList.contains('field') ? 'invalid' : 'invalid-box');
    if (key === 'run_at') $('field-run_time').classList.add('invalid');
    if (focus) {
        let target = $(FIELD_FOCUS[key]) || box;
        if (!target || target.offsetParent === null) target = slot;
        if (target) {
            target.scrollIntoView({ block: 'center' });
            if (target.focus) target.focus({ preventScroll: true });
        }
    }
}

/* ------------------------------------------------------------------ time zones */

function zoneOffset(zone, date) {
    try {
        const part = new Intl.DateTimeFormat('en-US', { timeZone: zone, timeZoneName: 'longOffset' })
            .formatToParts(date || new Date()).find(p => p.type === 'timeZoneName');
        const value = part ? part.value.replace('GMT', '') : '';
        return 'UTC' + (value || '+00:00');
    } catch (err) {
        return '';
    }
}

function fillZones(selected) {
    let zones = [];
    try { zones = Intl.supportedValuesOf('timeZone'); } catch (err) { zones = []; }
    zones = [...new Set(['UTC', ...zones, SCHED.viewerZone, selected].filter(Boolean))].sort();
    const select = $('timezone');
    select.innerHTML = zones.map(z => `<option value="${SCHED.esc(z)}">${SCHED.esc(z.replaceAll('_', ' '))}</option>`).join('');
    select.value = selected || SCHED.viewerZone;
}

/* wall time (date, time) of an instant in a zone */
function wallTime(iso, zone) {
    const parts = Object.fromEntries(new Intl.DateTimeFormat('en-CA', {
        timeZone: zone, year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
    }).formatToParts(new Date(iso)).map(p => [p.type, p.value]));
    return { date: `${parts.year}-${parts.month}-${parts.day}`, time: `${parts.hour}:${parts.minute}` };
}

/* ------------------------------------------------------------------ when: once / cron, presets */

function kind() { return document.querySelector('input[name=kind]:checked').value; }
function preset() { return document.querySelector('input[name=preset]:checked').value; }

function setKind(value) {
    $('kind-' + value).checked = true;
    $('once-box').hidden = value !== 'once';
    $('cron-box').hidden = value !== 'cron';
    for (const el of document.querySelectorAll('.cron-only')) el.hidden = value !== 'cron';
}

function setPreset(value) {
    document.querySelector(`input[name=preset][value=${value}]`).checked = true;
    for (const box of document.querySelectorAll('.preset')) box.hidden = box.dataset.preset !== value;
}

function hhmm(value) {
    const [h, m] = (value || '').split(':').map(n => parseInt(n, 10));
    return Number.isInteger(h) && Number.isInteger(m) ? [h, m] : null;
}

function compressDays(days) {
    /* [1,2,3,5] -> "1-3,5" (Monday=1 … Sunday=7) */
    const out = [];
    let i = 0;
    while (i < days.length) {
        let j = i;
        while (j + 1 < days.length && days[j + 1] === days[j] + 1) j++;
        out.push(j - i >= 2 ? `${days[i]}-${days[j]}` : days.slice(i, j + 1).join(','));
        i = j + 1;
    }
    return out.join(',');
}

/* the cron expression the visible preset describes, or null (error shown) */
function cronFromPreset() {
    const p = preset();
    clearErrors(['weekdays']);
    if (p === 'custom') return null;
    if (p === 'hourly') {
        const minute = parseInt($('hourly-minute').value, 10);
        return Number.isInteger(minute) ? `${minute} * * * *` : null;
    }
    const time = hhmm($(`${p}-time`).value);
    if (!time) return null;
    const [h, m] = time;
    if (p === 'daily') return `${m} ${h} * * *`;
    if (p === 'weekly') {
        const days = [...document.querySelectorAll('input[name=weekday]:checked')].map(d => parseInt(d.value, 10));
        if (!days.length) {
            showError('weekdays', 'Pick at least one day.');
            return null;
        }
        return `${m} ${h} * * ${days.length === 7 ? '*' : compressDays(days)}`;
    }
    return `${m} ${h} ${$('monthly-day').value} * *`;
}

function expandDays(field) {
    const days = new Set();
    for (const part of field.split(',')) {
        const range = part.split('-').map(n => parseInt(n, 10));
        if (range.some(n => !Number.isInteger(n) || n < 0 || n > 7)) return null;
        const [a, b] = range.length === 2 ? range : [range[0], range[0]];
        if (range.length > 2 || a > b) return null;
        for (let d = a; d <= b; d++) days.add(d === 0 ? 7 : d);
    }
    return days;
}

const pad = (n) => String(n).padStart(2, '0');

/* show the preset that writes this expression (custom when none does) */
function presetFromCron(expression) {
    const f = expression.trim().split(/\s+/);
    const num = (v, max) => /^\d{1,2}$/.test(v) && parseInt(v, 10) <= max;
    if (f.length === 5 && num(f[0], 59)) {
        const minute = parseInt(f[0], 10);
        if (f[1] === '*' && f[2] === '*' && f[3] === '*' && f[4] === '*') {
            $('hourly-minute').value = minute;
            return setPreset('hourly');
        }
        if (num(f[1], 23) && f[3] === '*') {
            const time = `${pad(f[1])}:${pad(minute)}`;
            if (f[2] === '*' && f[4] === '*') {
                $('daily-time').value = time;
                return setPreset('daily');
            }
            if (f[2] === '*') {
                const days = expandDays(f[4]);
                if (days && days.size) {
                    for (const box of document.querySelectorAll('input[name=weekday]')) {
                        box.checked = days.has(parseInt(box.value, 10));
                    }
                    $('weekly-time').value = time;
                    return setPreset('weekly');
                }
            }
            if (f[4] === '*' && ((num(f[2], 31) && parseInt(f[2], 10) >= 1) || f[2] === 'L')) {
                $('monthly-day').value = f[2] === 'L' ? 'L' : String(parseInt(f[2], 10));
                $('monthly-time').value = time;
                return setPreset('monthly');
            }
        }
        if (f[1] === '*' && f[2] === '*' && f[3] === '*' && f[4] === '*') return setPreset('hourly');
    }
    setPreset('custom');
}

function onPresetInput() {
    const expression = cronFromPreset();
    if (expression) {
        $('cron').value = expression;
        schedulePreview();
    }
}

/* ------------------------------------------------------------------ preview */

function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(runPreview, 250);
}

function previewRequest() {
    const timezone = $('timezone').value;
    if (kind() === 'once') {
        const date = $('run-date').value;
        const time = $('run-time').value;
        return date && time ? { run_at: `${date}T${time}`, timezone, count: 1 } : null;
    }
    const cron = $('cron').value.trim();
    return cron ? { cron_expression: cron, timezone, count: 5 } : null;
}

async function runPreview() {
    const body = previewRequest();
    const seq = ++previewSeq;
    const desc = $('preview-desc');
    if (!body) {
        desc.className = 'preview-desc muted';
        desc.textContent = kind() === 'once' ? 'Pick a date and a time.' : 'Enter a cron expression.';
        $('preview-times').innerHTML = '';
        $('preview-zone').textContent = '';
        return;
    }
    $('preview-busy').hidden = false;
    const res = await SCHED.api('POST', '/schedule/preview', body);
    if (seq !== previewSeq) return;  /* a newer preview is on its way */
    $('preview-busy').hidden = true;
    clearErrors(['run_at', 'cron_expression', 'timezone']);
    if (!res.ok) {
        desc.className = 'preview-desc error-text';
        desc.textContent = res.data?.detail || 'This rule cannot be previewed.';
        $('preview-times').innerHTML = '';
        $('preview-zone').textContent = '';
        if (res.data?.field) showError(res.data.field, res.data.detail);
        return;
    }
    const data = res.data;
    const zone = data.timezone;
    desc.className = 'preview-desc';
    desc.textContent = data.description;
    $('preview-zone').textContent = `in ${zone.replaceAll('_', ' ')} (${zoneOffset(zone)})` +
        (kind() === 'cron' ? ` · next ${data.times.length} runs:` : '');
    let previous = zoneOffset(zone);
    const sameZone = zoneOffset(zone) === zoneOffset(SCHED.viewerZone) && zone === SCHED.viewerZone;
    const now = Date.now();
    $('preview-times').innerHTML = data.times.map(t => {
        const offset = 'UTC' + (t.local.endsWith('Z') ? '+00:00' : t.local.slice(-6));
        const shift = offset !== previous
            ? `<div class="dst-note"><i aria-hidden="true">schedule</i>clock change: ${previous} → ${offset}</div>` : '';
        previous = offset;
        const note = t.dst_note ? `<div class="dst-note"><i aria-hidden="true">wb_twilight</i>${SCHED.esc(t.dst_note)}</div>` : '';
        const yours = sameZone ? '' : `<div class="yours">yours: ${SCHED.esc(SCHED.fmt(t.utc, undefined, true))}</div>`;
        const past = new Date(t.utc).getTime() < now ? '<div class="past">this time has passed</div>' : '';
        return `<li data-utc="${SCHED.esc(t.utc)}"><b>${SCHED.esc(SCHED.fmt(t.utc, zone, true))}</b>
                <span class="muted small-text">${SCHED.esc(SCHED.relative(t.utc))}</span>${yours}${note}${shift}${past}</li>`;
    }).join('');
}

/* ------------------------------------------------------------------ agents and their forms */

async function loadFlows(selected) {
    const select = $('flow');
    let offset = null;
    flows = [];
    for (let page = 0; page < 20; page++) {
        const res = await SCHED.api('GET', '/flow?pp=100' + (offset ? `&offset=${encodeURIComponent(offset)}` : ''));
        if (!res.ok) {
            showError('flow_url', res.data?.detail || 'The agents could not be loaded.');
            break;
        }
        flows.push(...(res.data.items || []).filter(f => (f.method || 'GET').toUpperCase() === 'GET'));
        offset = res.data.offset;
        if (!offset) break;
    }
    flows.sort((a, b) => (a.summary || a.url).localeCompare(b.summary || b.url));
    const options = ['<option value="">Choose an agent …</option>'];
    for (const f of flows) {
        options.push(`<option value="${SCHED.esc(f.url)}">${SCHED.esc(f.summary || f.url)}</option>`);
    }
    if (selected && !flows.some(f => f.url === selected)) {
        const name = EXISTING && EXISTING.flow_url === selected ? EXISTING.expose_name : selected;
        options.push(`<option value="${SCHED.esc(selected)}">${SCHED.esc(name)} (not available now)</option>`);
    }
    select.innerHTML = options.join('');
    select.value = selected || '';
    describeFlow();
}

function describeFlow() {
    const flow = flows.find(f => f.url === $('flow').value);
    $('flow-description').textContent = flow ? (flow.description || '') : '';
}

async function loadAgentForm(url, values) {
    const holder = $('agent-form');
    elements = [];
    if (!url) {
        holder.innerHTML = '';
        $('inputs-placeholder').hidden = false;
        $('inputs-placeholder').textContent = 'Choose an agent to fill in its inputs.';
        return;
    }
    $('inputs-placeholder').hidden = false;
    $('inputs-placeholder').textContent = 'loading the agent’s form …';
    const res = await SCHED.api('GET', '/admin/schedule/agent-form?flow=' + encodeURIComponent(url));
    if (!res.ok || !Array.isArray(res.data?.elements)) {
        holder.innerHTML = '';
        $('inputs-placeholder').textContent = (res.data?.detail ? res.data.detail + '. ' : '')
            + 'Fill in the inputs as JSON; they are checked when the agent is back.';
        setView('json', values);
        return;
    }
    elements = res.data.elements;
    const names = new Set(elements.filter(e => e.name).map(e => e.name));
    extraInputs = Object.fromEntries(Object.entries(values || {}).filter(([k]) => !names.has(k)));
    holder.innerHTML = elements.map(e => renderElement(e, values || {})).join('');
    $('inputs-placeholder').hidden = elements.some(e => e.name);
    if (!elements.some(e => e.name)) {
        $('inputs-placeholder').hidden = false;
        $('inputs-placeholder').textContent = 'This agent takes no inputs.';
    }
    bindAgentInputs(holder);
    if (inputsView === 'json') $('inputs-json').value = JSON.stringify(collectFormInputs(), null, 2);
}

function clearInputError(input) {
    const wrap = input.closest('.agent-field');
    if (!wrap) return;
    wrap.querySelector('.fld-error').textContent = '';
    const box = wrap.querySelector('.field');
    if (box) box.classList.remove('invalid');
}

const INPUT_TYPES = new Set(['text', 'number', 'password', 'date', 'time', 'datetime-local']);
const RANGE_ATTRS = {
    number: [['min_value', 'min'], ['max_value', 'max'], ['step', 'step']],
    date: [['min_date', 'min'], ['max_date', 'max']],
    time: [['min_time', 'min'], ['max_time', 'max'], ['step', 'step']],
    'datetime-local': [['min_datetime', 'min'], ['max_datetime', 'max'], ['step', 'step']],
    password: [['min_length', 'minlength'], ['max_length', 'maxlength']],
    text: [['size', 'size'], ['pattern', 'pattern']],
};

function renderElement(e, values) {
    const esc = SCHED.esc;
    const id = e.name ? `in-${e.name}` : '';
    const label = (text) => `<label class="fld-label" for="${esc(id)}">${esc(text || e.name)}${e.required ? ' <span class="req" aria-hidden="true">*</span>' : ''}</label>`;
    const given = e.name && Object.prototype.hasOwnProperty.call(values, e.name);
    const value = given ? values[e.name] : e.value;
    const wrap = (inner) => `<div class="agent-field" data-name="${esc(e.name)}">${inner}<div class="fld-error" id="err-in-${esc(e.name)}"></div></div>`;
    const common = `id="${esc(id)}" name="${esc(e.name)}" form="inputs-form" aria-describedby="err-in-${esc(e.name)}"${e.required ? ' required' : ''}`;
    switch (e.type) {
    case 'markdown':
        /* rendered by the panel with kodosumi's own Markdown renderer */
        return `<div class="agent-md">${e.html || ''}</div>`;
    case 'html':
        return `<div class="agent-html">${e.text || ''}</div>`;
    case 'break':
        return '<div class="space"></div>';
    case 'hr':
        return '<hr class="medium">';
    case 'textarea': {
        const attrs = [e.rows ? `rows="${esc(e.rows)}"` : '', e.cols ? `cols="${esc(e.cols)}"` : '',
                       e.max_length ? `maxlength="${esc(e.max_length)}"` : '',
                       e.placeholder ? `placeholder="${esc(e.placeholder)}"` : ''].join(' ');
        return wrap(`${label(e.label)}<div class="field textarea border fill extra"><textarea ${common} ${attrs}>${esc(value ?? '')}</textarea></div>`);
    }
    case 'boolean': {
        const checked = given ? (value === 'on' || value === true) : !!value;
        return wrap(`${e.label ? `<div class="fld-label">${esc(e.label)}</div>` : ''}
            <label class="checkbox large"><input type="checkbox" ${common}${checked ? ' checked' : ''}><span>${esc(e.option || 'on')}</span></label>`);
    }
    case 'select': {
        const options = (e.option || []).map(o => {
            const selected = value != null && value !== '' ? o.name === String(value) : !!o.value;
            return `<option value="${esc(o.name)}"${selected ? ' selected' : ''}>${esc(o.label ?? o.name)}</option>`;
        }).join('');
        return wrap(`${label(e.label)}<div class="field border fill suffix"><select ${common}>${options}</select><i>arrow_drop_down</i></div>`);
    }
    case 'file':
        return wrap(`${label(e.label)}<p class="file-note"><i class="tiny">attach_file</i> File uploads cannot be scheduled: a schedule keeps no files. Give the agent another way to find its data, or run it from its own form.</p>`);
    case 'errors': case 'submit': case 'cancel': case 'action': case 'option':
        return '';
    default: {
        if (!INPUT_TYPES.has(e.type)) {
            return e.name ? wrap(`${label(e.label)}<div class="field border fill"><input type="text" ${common} value="${esc(value ?? '')}"></div>`) : '';
        }
        const extra = (RANGE_ATTRS[e.type] || []).filter(([key]) => e[key] !== null && e[key] !== undefined && e[key] !== '')
            .map(([key, attr]) => `${attr}="${esc(e[key])}"`).join(' ');
        const placeholder = e.placeholder ? `placeholder="${esc(e.placeholder)}"` : '';
        return wrap(`${label(e.label)}<div class="field border fill"><input type="${esc(e.type)}" ${common} ${extra} ${placeholder} value="${esc(value ?? '')}"></div>`);
    }
    }
}

/* exactly what kodosumi's own form posts: every named field as a string, a checked box as "on",
   an unchecked box left out */
function collectFormInputs() {
    const values = { ...extraInputs };
    for (const [key, value] of new FormData($('inputs-form'))) {
        if (typeof value === 'string') values[key] = value;
    }
    return values;
}

function collectInputs() {
    if (inputsView === 'json') {
        let parsed;
        try {
            parsed = JSON.parse($('inputs-json').value || '{}');
        } catch (err) {
            showError('inputs', `The inputs are not valid JSON: ${err.message}`, true);
            return null;
        }
        if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
            showError('inputs', 'The inputs must be a JSON object, like {"message": "hello"}.', true);
            return null;
        }
        return parsed;
    }
    let first = null;
    for (const input of document.querySelectorAll('#agent-form [name]')) {
        if (!input.checkValidity()) {
            const wrap = input.closest('.agent-field');
            wrap.querySelector('.fld-error').textContent = input.validationMessage;
            const box = wrap.querySelector('.field');
            if (box) box.classList.add('invalid');
            first = first || input;
        }
    }
    if (first) {
        showError('inputs', 'Some inputs need your attention.');
        first.scrollIntoView({ block: 'center' });
        first.focus({ preventScroll: true });
        return null;
    }
    return collectFormInputs();
}

function setView(view, values) {
    if (view === inputsView && values === undefined) return;
    clearErrors(['inputs']);
    if (view === 'json') {
        const current = values !== undefined ? values : collectFormInputs();
        $('inputs-json').value = JSON.stringify(current, null, 2);
    } else {
        let parsed;
        try {
            parsed = JSON.parse($('inputs-json').value || '{}');
            if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
        } catch (err) {
            showError('inputs', 'Fix the JSON first: the form view needs a JSON object.', true);
            return;
        }
        loadAgentFormValues(parsed);
    }
    inputsView = view;
    $('inputs-form-view').hidden = view !== 'form';
    $('inputs-json-view').hidden = view !== 'json';
    for (const [id, v] of [['view-form', 'form'], ['view-json', 'json']]) {
        $(id).classList.toggle('fill', v === view);
        $(id).setAttribute('aria-selected', String(v === view));
    }
}

function loadAgentFormValues(values) {
    /* re-render the current agent's form with these values (no reload of the elements) */
    const names = new Set(elements.filter(e => e.name).map(e => e.name));
    extraInputs = Object.fromEntries(Object.entries(values).filter(([k]) => !names.has(k)));
    $('agent-form').innerHTML = elements.map(e => renderElement(e, values)).join('');
    bindAgentInputs($('agent-form'));
}

function bindAgentInputs(holder) {
    for (const input of holder.querySelectorAll('input, select, textarea')) {
        input.addEventListener('input', () => clearInputError(input));
        /* the agent's fields belong to their own (hidden) form: Enter submits the schedule,
           as in every other field of this page */
        if (input.tagName === 'INPUT') {
            input.addEventListener('keydown', (event) => {
                if (event.key === 'Enter' && !event.isComposing) {
                    event.preventDefault();
                    $('schedule-form').requestSubmit();
                }
            });
        }
    }
}

/* ------------------------------------------------------------------ submit */

function timingSnapshot() {
    return JSON.stringify({
        kind: kind(), date: $('run-date').value, time: $('run-time').value, cron: $('cron').value.trim(),
        zone: $('timezone').value, end: $('end-at').value, max: $('max-runs').value,
    });
}

function buildPayload() {
    clearErrors();
    let ok = true;
    const flowUrl = $('flow').value;
    if (!flowUrl) { showError('flow_url', 'Choose the agent to run.'); ok = false; }
    const body = {
        flow_url: flowUrl,
        title: $('title').value.trim() || null,
        schedule_type: kind(),
        timezone: $('timezone').value,
        catchup: document.querySelector('input[name=catchup]:checked').value,
        overlap: document.querySelector('input[name=overlap]:checked').value,
    };
    const windowText = $('catchup-window').value.trim();
    body.catchup_window = windowText ? Number(windowText) : 60;
    if (!(Number.isInteger(body.catchup_window) && body.catchup_window >= 1)) {
        showError('catchup_window', 'A whole number of seconds, at least 1.'); ok = false;
    }
    if (body.schedule_type === 'once') {
        const date = $('run-date').value;
        const time = $('run-time').value;
        if (!date || !time) { showError('run_at', 'Pick the date and the time to run at.'); ok = false; }
        body.run_at = `${date}T${time}`;
        body.end_at = null;
        body.max_runs = null;
    } else {
        if (preset() !== 'custom' && !cronFromPreset()) ok = false;
        const cron = $('cron').value.trim();
        if (!cron) { showError('cron_expression', 'Enter when to run, as a cron expression.'); ok = false; }
        body.cron_expression = cron;
        body.end_at = $('end-at').value || null;
        const max = $('max-runs').value.trim();
        body.max_runs = max ? Number(max) : null;
        if (max && !(Number.isInteger(body.max_runs) && body.max_runs >= 1)) {
            showError('max_runs', 'A whole number of at least 1, or empty.'); ok = false;
        }
    }
    const inputs = collectInputs();
    if (inputs === null) ok = false;
    body.inputs = inputs;
    if (!ok) {
        const first = document.querySelector('.fld-error:not(:empty)');
        if (first) first.scrollIntoView({ block: 'center' });
        return null;
    }
    if (MODE === 'edit') {
        body.version = EXISTING.version;
        if (timingSnapshot() === timingAtLoad) {
            /* unchanged timing is not sent: a done once-schedule keeps its past run_at */
            for (const key of ['schedule_type', 'run_at', 'cron_expression', 'timezone', 'end_at', 'max_runs']) delete body[key];
        }
        if (flowUrl === flowAtLoad) {
            delete body.flow_url;
        } else {
            const flow = flows.find(f => f.url === flowUrl);
            if (flow && flow.summary) body.expose_name = flow.summary;
        }
    } else {
        if (body.end_at === null) delete body.end_at;
        if (body.max_runs === null) delete body.max_runs;
    }
    return body;
}

async function submit(event) {
    event.preventDefault();
    const body = buildPayload();
    if (!body) return;
    const button = $('submit-button');
    button.disabled = true;
    const res = MODE === 'edit'
        ? await SCHED.api('PUT', `/schedule/${EXISTING.id}`, body)
        : await SCHED.api('POST', '/schedule/', body);
    button.disabled = false;
    if (res.ok) {
        const s = res.data;
        const next = s.next_run ? ` Next run: ${SCHED.fmt(s.next_run, undefined, true)}.` : '';
        const notes = (s.notes || []).length ? ' ' + s.notes.join(' ') : '';
        SCHED.flash((MODE === 'edit' ? 'Saved.' : 'Scheduled.') + next + notes);
        window.location.href = `/admin/schedule/${s.id}`;
        return;
    }
    const data = res.data || {};
    if (res.status === 409 && data.field === 'version') {
        $('form-error-text').innerHTML = `${SCHED.esc(data.detail)} <a class="text-link" href="">Reload</a> (your changes here are lost).`;
        $('form-error').hidden = false;
        $('form-error').scrollIntoView({ block: 'center' });
        return;
    }
    showError(data.field, data.detail || `The schedule could not be saved (HTTP ${res.status}).`, true);
}

/* ------------------------------------------------------------------ start */

function defaultOnce() {
    const at = new Date(Date.now() + 60 * 60 * 1000);
    at.setMinutes(0, 0, 0);
    at.setHours(at.getHours() + 1);
    return wallTime(at.toISOString(), SCHED.viewerZone);
}

document.addEventListener('DOMContentLoaded', async () => {
    const s = EXISTING;
    fillZones(s ? s.timezone : SCHED.viewerZone);
    if (s) {
        $('title').value = s.title || '';
        setKind(s.schedule_type);
        if (s.run_at) {
            const wall = wallTime(s.run_at, s.timezone);
            $('run-date').value = wall.date;
            $('run-time').value = wall.time;
        } else {
            const wall = defaultOnce();
            $('run-date').value = wall.date;
            $('run-time').value = wall.time;
        }
        if (s.cron_expression) {
            $('cron').value = s.cron_expression;
            presetFromCron(s.cron_expression);
        }
        document.querySelector(`input[name=catchup][value=${s.catchup}]`).checked = true;
        document.querySelector(`input[name=overlap][value=${s.overlap}]`).checked = true;
        if (s.end_at) {
            const wall = wallTime(s.end_at, s.timezone);
            $('end-at').value = `${wall.date}T${wall.time}`;
        }
        if (s.max_runs) $('max-runs').value = s.max_runs;
        $('catchup-window').value = s.catchup_window ?? 60;
        if (s.catchup !== 'once' || s.overlap !== 'skip' || s.end_at || s.max_runs
            || (s.catchup_window ?? 60) !== 60) $('advanced').open = true;
    } else {
        const wall = defaultOnce();
        $('run-date').value = wall.date;
        $('run-time').value = wall.time;
        setKind('once');
        setPreset('daily');
    }
    timingAtLoad = timingSnapshot();
    flowAtLoad = s ? s.flow_url : null;

    for (const radio of document.querySelectorAll('input[name=kind]')) {
        radio.addEventListener('change', () => { setKind(kind()); schedulePreview(); });
    }
    for (const radio of document.querySelectorAll('input[name=preset]')) {
        radio.addEventListener('change', () => {
            setPreset(preset());
            if (preset() === 'custom') $('cron').focus(); else onPresetInput();
        });
    }
    for (const id of ['hourly-minute', 'daily-time', 'weekly-time', 'monthly-day', 'monthly-time']) {
        $(id).addEventListener('input', onPresetInput);
        $(id).addEventListener('change', onPresetInput);
    }
    for (const box of document.querySelectorAll('input[name=weekday]')) box.addEventListener('change', onPresetInput);
    $('cron').addEventListener('input', () => { presetFromCron($('cron').value); schedulePreview(); });
    for (const id of ['run-date', 'run-time', 'timezone']) {
        $(id).addEventListener('input', schedulePreview);
        $(id).addEventListener('change', schedulePreview);
    }
    for (const id of ['title', 'end-at', 'max-runs', 'catchup-window']) {
        $(id).addEventListener('input', () => clearErrors([{ 'end-at': 'end_at', 'max-runs': 'max_runs', 'catchup-window': 'catchup_window' }[id] || id]));
    }
    $('flow').addEventListener('change', () => {
        clearErrors(['flow_url', 'inputs']);
        describeFlow();
        const values = inputsView === 'json' ? null : collectFormInputs();
        loadAgentForm($('flow').value, values || undefined);
    });
    $('view-form').addEventListener('click', () => setView('form'));
    $('view-json').addEventListener('click', () => setView('json'));
    $('inputs-json').addEventListener('input', () => clearErrors(['inputs']));
    $('schedule-form').addEventListener('submit', submit);
    $('inputs-form').addEventListener('submit', (event) => event.preventDefault());

    schedulePreview();
    const selected = s ? s.flow_url : PRESET_FLOW;
    await loadFlows(selected);
    if (selected) await loadAgentForm(selected, s ? s.inputs : undefined);
    if (s && Object.keys(extraInputs).length) {
        setView('json', s.inputs);
        $('err-inputs').textContent = 'Some saved inputs are not fields of the agent’s form any more; remove them here, or saving is refused.';
    }
});
