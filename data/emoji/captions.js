// Writes the captions of the emoji art set and the lists of images to convert.
//   node captions.js NODE_MODULES OUT_DIR WORK_DIR SETS
// SETS: comma-separated of twitter, google, facebook, openmoji.
// For each emoji image: OUT_DIR/SET/NAME.txt (one caption a line: name, short names,
// keywords, category, each with the set's style) and a line in
//   WORK_DIR/convert.tsv  SRC_PNG<TAB>OUT_DIR/SET/NAME.png   (emoji-datasource PNGs, 64 px)
//   WORK_DIR/svg.tsv      SRC_SVG<TAB>WORK_DIR/svg/NAME.png<TAB>OUT_DIR/openmoji/NAME.png
// Prints the count per set. Plain Node (>= 12), no dependencies.
'use strict';
const fs = require('fs');
const path = require('path');

const [modules, outDir, workDir, setsArg] = process.argv.slice(2);
if (!modules || !outDir || !workDir) {
  console.error('usage: node captions.js NODE_MODULES OUT_DIR WORK_DIR [SETS]');
  process.exit(2);
}
const sets = (setsArg || 'twitter,google,facebook,openmoji').split(',').filter(Boolean);

const TONES = {
  '1F3FB': 'light skin tone', '1F3FC': 'medium-light skin tone', '1F3FD': 'medium skin tone',
  '1F3FE': 'medium-dark skin tone', '1F3FF': 'dark skin tone',
};

// emojilib: emoji character -> [name_with_underscores, keyword, ...]
let emojilib = {};
try {
  emojilib = JSON.parse(fs.readFileSync(path.join(modules, 'emojilib/dist/emoji-en-US.json'), 'utf8'));
} catch (e) {
  console.error('warning: emojilib not found, captions without its keywords');
}

const chars = (unified) => String.fromCodePoint(...unified.split('-').map((h) => parseInt(h, 16)));
const clean = (s) => String(s || '').toLowerCase().replace(/_/g, ' ').replace(/&/g, 'and')
  .replace(/\s+/g, ' ').trim();
const uniq = (xs) => [...new Set(xs.map(clean).filter(Boolean))];

// The caption lines of one image.
function captions(name, shortNames, keywords, category, subcategory, style) {
  const s = `${style} style`;
  const lines = [`${name}, ${s}`, name, `${name} emoji, ${s}`];
  for (const sn of uniq(shortNames)) if (sn !== name) lines.push(`${sn}, ${s}`);
  const kw = uniq(keywords).filter((k) => k !== name && /^[a-z][a-z0-9 '-]*$/.test(k)).slice(0, 10);
  if (kw.length) lines.push(`${name}: ${kw.join(', ')}, ${s}`);
  if (category) lines.push(`${clean(category)}: ${name}, ${s}`);
  if (subcategory) lines.push(`${clean(subcategory.replace(/-/g, ' '))}, ${name}, ${s}`);
  return uniq(lines).join('\n') + '\n';
}

fs.mkdirSync(workDir, { recursive: true });
const convert = [];
const svg = [];
const counts = {};

function datasource(set) {
  const pkg = path.join(modules, `emoji-datasource-${set}`);
  const list = JSON.parse(fs.readFileSync(path.join(pkg, 'emoji.json'), 'utf8'));
  const dir = path.join(outDir, set);
  fs.mkdirSync(dir, { recursive: true });
  let n = 0;
  const add = (e, v, toneText) => {
    const src = path.join(pkg, 'img', set, '64', v.image);
    if (!v[`has_img_${set}`] || !fs.existsSync(src)) return;
    const base = clean(e.name || e.short_name);
    const name = toneText ? `${base}, ${toneText}` : base;
    const kw = emojilib[chars(e.unified)] || emojilib[chars(e.non_qualified || e.unified)] || [];
    const stem = v.image.replace(/\.png$/, '');
    fs.writeFileSync(path.join(dir, `${stem}.txt`),
      captions(name, e.short_names || [], kw, e.category, e.subcategory, set));
    convert.push(`${src}\t${path.join(dir, `${stem}.png`)}`);
    n++;
  };
  for (const e of list) {
    add(e, e, '');
    for (const [key, v] of Object.entries(e.skin_variations || {}))
      add(e, v, key.split('-').map((t) => TONES[t.toUpperCase()] || '').filter(Boolean).join(', '));
  }
  counts[set] = n;
}

function openmoji() {
  const pkg = path.join(modules, 'openmoji');
  const list = JSON.parse(fs.readFileSync(path.join(pkg, 'data/openmoji.json'), 'utf8'));
  const dir = path.join(outDir, 'openmoji');
  const tmp = path.join(workDir, 'svg');
  fs.mkdirSync(dir, { recursive: true });
  fs.mkdirSync(tmp, { recursive: true });
  let n = 0;
  for (const e of list) {
    const src = path.join(pkg, 'color/svg', `${e.hexcode}.svg`);
    if (!e.annotation || !fs.existsSync(src)) continue;
    const split = (s) => String(s || '').split(',').map((t) => t.trim());
    const kw = [...split(e.tags), ...split(e.openmoji_tags)];
    fs.writeFileSync(path.join(dir, `${e.hexcode}.txt`),
      captions(clean(e.annotation), [], kw, clean(e.group.replace(/-/g, ' ')), e.subgroups, 'openmoji'));
    svg.push(`${src}\t${path.join(tmp, `${e.hexcode}.png`)}\t${path.join(dir, `${e.hexcode}.png`)}`);
    n++;
  }
  counts.openmoji = n;
}

for (const set of sets) {
  if (set === 'openmoji') openmoji();
  else if (['twitter', 'google', 'facebook'].includes(set)) datasource(set);
  else {
    console.error(`unknown set "${set}" (twitter, google, facebook, openmoji)`);
    process.exit(2);
  }
}
fs.writeFileSync(path.join(workDir, 'convert.tsv'), convert.join('\n') + (convert.length ? '\n' : ''));
fs.writeFileSync(path.join(workDir, 'svg.tsv'), svg.join('\n') + (svg.length ? '\n' : ''));
for (const [set, n] of Object.entries(counts)) console.log(`${set}: ${n} images with captions`);
