// Renders the bundled example: five synthetic 800×600 "photos" of one toy robot on different
// backgrounds, positions and scales (SVG drawn by sharp). Run: node examples/make-toy-robot.mjs
// The JPEGs are committed; this script says how they were made.

import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";

const out = join(dirname(fileURLToPath(import.meta.url)), "toy-robot");
mkdirSync(out, { recursive: true });

function robot(x, y, s, tilt) {
  return `<g transform="translate(${x} ${y}) rotate(${tilt}) scale(${s})">
    <rect x="-40" y="-120" width="80" height="60" rx="10" fill="#d94f2b" stroke="#5a1d0c" stroke-width="4"/>
    <circle cx="-18" cy="-92" r="9" fill="#fff"/><circle cx="18" cy="-92" r="9" fill="#fff"/>
    <circle cx="-18" cy="-92" r="4" fill="#123"/><circle cx="18" cy="-92" r="4" fill="#123"/>
    <line x1="0" y1="-120" x2="0" y2="-145" stroke="#444" stroke-width="5"/><circle cx="0" cy="-150" r="8" fill="#f2c230"/>
    <rect x="-55" y="-55" width="110" height="100" rx="14" fill="#2b7bd9" stroke="#0c2f5a" stroke-width="4"/>
    <rect x="-25" y="-35" width="50" height="30" rx="5" fill="#f2c230"/>
    <rect x="-85" y="-45" width="26" height="70" rx="10" fill="#d94f2b"/><rect x="59" y="-45" width="26" height="70" rx="10" fill="#d94f2b"/>
    <rect x="-45" y="45" width="32" height="60" rx="8" fill="#333"/><rect x="13" y="45" width="32" height="60" rx="8" fill="#333"/>
  </g>`;
}

const scenes = [
  {
    bg: `<rect width="800" height="600" fill="#e9e4d8"/><rect y="420" width="800" height="180" fill="#b98b5e"/>`,
    x: 400,
    y: 330,
    s: 1.3,
    t: 0,
  },
  {
    bg: `<rect width="800" height="600" fill="#7fa37a"/><circle cx="650" cy="120" r="80" fill="#e8e07a"/>`,
    x: 260,
    y: 360,
    s: 1.0,
    t: -8,
  },
  {
    bg: `<defs><pattern id="p" width="40" height="40" patternUnits="userSpaceOnUse"><rect width="40" height="40" fill="#ddd"/><rect width="20" height="20" fill="#aaa"/><rect x="20" y="20" width="20" height="20" fill="#aaa"/></pattern></defs><rect width="800" height="600" fill="url(#p)"/>`,
    x: 520,
    y: 350,
    s: 1.1,
    t: 6,
  },
  {
    bg: `<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="#334"/><stop offset="1" stop-color="#99a"/></linearGradient></defs><rect width="800" height="600" fill="url(#g)"/><rect x="60" y="380" width="300" height="40" fill="#654"/>`,
    x: 420,
    y: 300,
    s: 0.8,
    t: 12,
  },
  {
    bg: `<rect width="800" height="600" fill="#f4f1ea"/><rect x="0" y="0" width="260" height="600" fill="#c9d6e3"/><circle cx="700" cy="500" r="60" fill="#2b7bd9" opacity="0.4"/>`,
    x: 430,
    y: 360,
    s: 1.5,
    t: -3,
  },
];

for (const [i, scene] of scenes.entries()) {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="800" height="600">${scene.bg}${robot(scene.x, scene.y, scene.s, scene.t)}</svg>`;
  const file = join(out, `robot-${String(i + 1).padStart(2, "0")}.jpg`);
  await sharp(Buffer.from(svg)).jpeg({ quality: 88 }).toFile(file);
  console.log(file);
}
