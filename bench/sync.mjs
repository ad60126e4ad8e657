import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  startPulse,
  startTool,
  tempDir,
  ulidAt,
  run,
  decodeAudio,
  ROOT,
  startFastSource,
  rawFrameWriter,
  MP4V,
  startPipeSource,
  firstSampleTruth,
} from '../test/helpers.mjs'
import { parquetWriteFile } from 'hyparquet-writer'
import { RATE, startClickStream, whiteFramePts, clickOnsets, median } from './lib.mjs'

const quick = process.argv.includes('--quick') // shorter recordings, for trying the bench itself
const clockOnly = process.argv.includes('--clock') // only the sound card's clock rows
const firstOnly = process.argv.includes('--first-sample') // only the first sample's rows

/**
 * TracktorLive's writer: mp4v at a nominal fps, frames written in real time at `realFps`, white at
 * the first frame of each whole second. Returns each frame's true wall time.
 */
function startStandIn(feedDir, { nominalFps = 30, realFps = 30, gapMs = 30 } = {}) {
  fs.mkdirSync(feedDir, { recursive: true })
  const ulidEpochMs = Date.now()
  const file = path.join(feedDir, `${ulidAt(ulidEpochMs)}.mp4`)
  const writer = rawFrameWriter('64x48', nominalFps, [...MP4V, file])
  const frameTimesS = []
  const whiteFrames = [] // { frame, wallS }
  let lastSecond = null
  let stopped = false
  const done = (async () => {
    const firstAtMs = ulidEpochMs + gapMs
    for (let k = 0; !stopped; k++) {
      const dueMs = firstAtMs + (k * 1000) / realFps
      const waitMs = dueMs - Date.now()
      if (waitMs > 0) await sleep(waitMs)
      const wallS = Date.now() / 1000
      const second = Math.floor(wallS)
      const white = lastSecond !== null && second !== lastSecond
      lastSecond = second
      frameTimesS.push(wallS)
      if (white) whiteFrames.push({ frame: k, wallS })
      writer.stdin.write(Buffer.alloc(64 * 48, white ? 255 : 16))
    }
    writer.stdin.end()
    await new Promise((resolve) => writer.once('exit', resolve))
  })()
  return {
    file,
    ulidEpochMs,
    frameTimesS,
    whiteFrames,
    async stop() {
      stopped = true
      await done
    },
  }
}

/**
 * The tool's own CPU seconds (every thread's scheduler runtime, in ns, rather than the 10 ms ticks
 * of /proc/pid/stat) and peak RSS; ffmpeg is a separate process and not counted.
 */
function procStats(pid) {
  try {
    let cpuNs = 0
    for (const thread of fs.readdirSync(`/proc/${pid}/task`))
      cpuNs += Number(fs.readFileSync(`/proc/${pid}/task/${thread}/schedstat`, 'utf8').split(' ')[0])
    const cpuS = cpuNs / 1e9
    const hwmKb = Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1])
    return { cpuS, rssMb: hwmKb / 1024 }
  } catch {
    return null
  }
}

async function scenario(
  pulse,
  name,
  { seconds, realFps = 30, gapMs = 30, timesync = false, env = {}, plot = false, slowBashrcS = 0 },
) {
  const cwd = tempDir('ra-bench-')
  if (slowBashrcS) {
    // A conda- or pyenv-like init in ~/.bashrc, and a top-level shell (no SHLVL), where bash reads it.
    const home = tempDir('ra-bench-home-')
    fs.writeFileSync(path.join(home, '.bashrc'), `sleep ${slowBashrcS}\n`)
    env = { ...env, HOME: home, SHLVL: '' }
  }
  const feed = 'bench'
  const video = startStandIn(path.join(cwd, feed), { realFps, gapMs })
  const serverStartEpochS = video.ulidEpochMs / 1000 - 0.7 // the cassette's t_init: a 0.7 s camera open before the ULID
  await sleep(400)
  const spawnEpochS = Date.now() / 1000
  const tool = startTool(
    [feed, '--format', 'pulse', '--device', pulse.source, ...(plot ? ['--plot', 'timeline.png'] : [])],
    { cwd, env: Object.fromEntries(Object.entries({ ...pulse.env, ...env }).filter(([, v]) => v !== '')) },
  )
  await tool.recording(path.join(cwd, `${feed}-audio.wav`), 20000)
  await sleep(1000)
  const startStats = procStats(tool.child.pid)
  const startedMs = Date.now()
  await sleep(seconds * 1000)
  const endStats = procStats(tool.child.pid)
  const cpuShare = startStats && endStats ? (endStats.cpuS - startStats.cpuS) / ((Date.now() - startedMs) / 1000) : NaN
  await video.stop()
  if (timesync) {
    parquetWriteFile({
      filename: path.join(cwd, `${feed}-timesyncUTC.parquet`),
      columnData: [{ name: 'timestampUTC', data: video.frameTimesS.slice(0, -1), type: 'DOUBLE' }],
    })
  }
  const ctrlCMs = Date.now()
  let commandShownMs = null
  tool.child.stdout.on('data', () => {
    commandShownMs ??= Date.now()
  })
  tool.ctrlC()
  const result = await tool.exited
  if (result.code !== 0) throw new Error(`${name}: record-audio exited ${result.code}: ${result.stderr}`)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, `${feed}-audio-sync.json`), 'utf8'))
  const mux = run('bash', ['-c', sync.muxCommand])
  if (mux.status !== 0) throw new Error(`${name}: mux failed: ${mux.stderr}`)

  const wavClicks = clickOnsets(decodeAudio(sync.audioFile))
  const muxClicks = clickOnsets(decodeAudio(sync.muxedFile))
  const whites = whiteFramePts(sync.muxedFile)
  const trueFirstFrameS = video.frameTimesS[0]
  const errorsMs = []
  const cassetteMs = []
  const spawnMs = []
  for (const white of whites) {
    const truth = video.whiteFrames.find((w) => w.frame === white.frame)
    if (!truth) continue
    const second = Math.floor(truth.wallS)
    // The click of that second, on the capture's clock: its index in the WAV, as claimed.
    const wavIndex = wavClicks.find((i) => Math.abs(sync.audioStartEpochS + i / RATE - second) < 0.45)
    if (wavIndex === undefined) continue
    const clickClaimedS = sync.audioStartEpochS + wavIndex / RATE
    const muxIndex = muxClicks.find((i) => Math.abs(i / RATE - (clickClaimedS - sync.videoStartEpochS)) < 0.25)
    if (muxIndex === undefined) continue
    errorsMs.push((muxIndex / RATE - white.ptsS - (clickClaimedS - truth.wallS)) * 1000)
    // The same pair under the other methods' offsets (a plain delay, no drift fix): the audio at
    // output time i/RATE + offset against the frame at its nominal time.
    const nominalPtsS = white.frame / 30
    const trueOffsetAtPair = clickClaimedS - truth.wallS - (wavIndex / RATE - nominalPtsS)
    cassetteMs.push((spawnEpochS - serverStartEpochS - trueOffsetAtPair) * 1000)
    spawnMs.push((spawnEpochS - sync.videoStartEpochS - trueOffsetAtPair) * 1000)
  }
  return {
    name,
    pairs: errorsMs.length,
    toolMedianMs: median(errorsMs),
    toolMaxMs: Math.max(...errorsMs.map(Math.abs)),
    toolEndMs: errorsMs.at(-1),
    cassetteMedianMs: median(cassetteMs),
    spawnMedianMs: median(spawnMs),
    videoStartSource: sync.videoStartSource,
    videoTrueGapMs: (trueFirstFrameS - sync.videoStartEpochS) * 1000,
    itsscale: sync.itsscale,
    driftAtEndMs: sync.driftAtEndMs,
    audioStartSource: sync.audioStartSource,
    audioDoubtful: sync.audioStartDoubtful,
    audioVsSpawnMs: (sync.audioStartEpochS - spawnEpochS) * 1000,
    ctrlCToCommandMs: commandShownMs ? commandShownMs - ctrlCMs : NaN,
    cpuShare,
    rssMb: endStats?.rssMb ?? NaN,
    framePeriodMs: 1000 / realFps,
    warnings: sync.anchorWarnings,
    plotFile: plot ? path.join(cwd, 'timeline.png') : null,
  }
}

/**
 * A pipe source's clicks (each at its wall-clock second) against the stand-in's white frames in a
 * muxed file's audio stream `stream`: each pair's physical error, ms (+: the sound late).
 */
function scoreClicks(muxedFile, video, stream = 0) {
  const clicks = clickOnsets(decodeAudio(muxedFile, RATE, stream))
  const errorsMs = []
  for (const white of whiteFramePts(muxedFile)) {
    const truth = video.whiteFrames.find((w) => w.frame === white.frame)
    if (!truth) continue
    const second = Math.floor(truth.wallS)
    // The click of that second lies where the frame does, give or take the error; a pipe
    // source's start stamp may be off by whole seconds of backlog, which is one constant for the
    // run, so each pair takes the nearest click (clicks are 1 s apart) and the first → last
    // change is what the clock moves.
    const expectedS = white.ptsS + (second - truth.wallS)
    const click = clicks.reduce((a, b) => (Math.abs(b / RATE - expectedS) < Math.abs(a / RATE - expectedS) ? b : a), 0)
    if (Math.abs(click / RATE - expectedS) <= 0.5) errorsMs.push((click / RATE - expectedS) * 1000)
  }
  // nearest-click pairing wraps at ±500 ms: unwrap each pair to the one before
  for (let i = 1; i < errorsMs.length; i++) errorsMs[i] += 1000 * Math.round((errorsMs[i - 1] - errorsMs[i]) / 1000)
  return { pairs: errorsMs.length, medianMs: median(errorsMs), driftMs: errorsMs.at(-1) - errorsMs[0] }
}

/**
 * Two sound cards in one recording, each a pipe source with its clicks at whole wall-clock seconds:
 * the first at `ratios[0]` × 48 kHz, the second at `ratios[1]`. Each stream of the muxed file is
 * scored like fastCardScenario's; and the same recording muxed again from a copy of the sync file
 * that puts the second card on the first's clock (what every earlier version did with several
 * devices). Someone records from each source from the start: a pipe source nobody reads stops
 * reading its FIFO, and the backlog then reaches the first capture late and in part.
 */
async function twoCardsScenario(pulse, { seconds, ratios }) {
  const sources = []
  for (const ratio of ratios) sources.push(await startFastSource(pulse, ratio))
  const listeners = sources.map((source) =>
    spawn('parec', ['-d', source.source, '--raw'], { env: pulse.env, stdio: ['ignore', 'ignore', 'ignore'] }),
  )
  try {
    await sleep(1000)
    const cwd = tempDir('ra-bench-')
    const feed = 'bench'
    const video = startStandIn(path.join(cwd, feed), {})
    await sleep(400)
    const devices = sources.flatMap((source) => ['--device', source.source])
    const tool = startTool([feed, '--format', 'pulse', ...devices, '--no-drift-fix'], { cwd, env: pulse.env })
    await tool.recording(path.join(cwd, `${feed}-audio-2.wav`), 20000)
    await sleep(seconds * 1000)
    await video.stop()
    tool.ctrlC()
    const result = await tool.exited
    if (result.code !== 0) throw new Error(`two cards: record-audio exited ${result.code}: ${result.stderr}`)
    const syncFile = path.join(cwd, `${feed}-audio-sync.json`)
    const sync = JSON.parse(fs.readFileSync(syncFile, 'utf8'))
    const mux = run('bash', ['-c', sync.muxCommand])
    if (mux.status !== 0) throw new Error(`two cards: mux failed: ${mux.stderr}`)
    const firstClock = path.join(cwd, 'first-clock-sync.json')
    const onFirst = sync.audios.map((part) => ({ ...part, audioClockRatio: sync.audioClockRatio }))
    fs.writeFileSync(firstClock, JSON.stringify({ ...sync, audios: onFirst }))
    const firstMuxed = path.join(cwd, 'first-clock.mp4')
    const again = run(
      process.execPath,
      [path.join(ROOT, 'dist', 'record-audio.mjs'), 'mux', firstClock, '--muxed-out', firstMuxed],
      {
        cwd,
        env: pulse.env,
      },
    )
    if (again.status !== 0) throw new Error(`two cards: mux on the first card's clock failed: ${again.stderr}`)
    return sync.audios.map((part, k) => ({
      name: `2 cards, stream ${k + 1}${k ? '' : ' (its clock sets the timeline)'}`,
      measuredPpm: part.audioClockPpm,
      uncertaintyPpm: part.audioClockUncertaintyPpm,
      truePpm: (ratios[k] - 1) * 1e6,
      applied: part.audioClockRatio !== 1,
      speed: sync.audioPlacements[k].speed,
      tool: scoreClicks(sync.muxedFile, video, k),
      onFirst: scoreClicks(firstMuxed, video, k),
      seconds,
    }))
  } finally {
    for (const listener of listeners) listener.kill()
    for (const source of sources) await source.stop()
  }
}

/**
 * A sound card whose clock runs fast: the clicks of a pipe source fed at 48000 × ratio samples per
 * wall-clock second, placed at whole epoch seconds by wall time, against the stand-in's white frames.
 * The error is physical (the click's true time is its second); what the card's clock changes is
 * how it moves from the first pair to the last, so both commands are scored on that: the tool's
 * (the video retimed to the card) and the same recording with the clock left out (mux later on a
 * copy of the sync file whose audioClockRatio is 1: what every earlier version did).
 */
async function fastCardScenario(pulse, name, { seconds, ratio }) {
  const fast = await startFastSource(pulse, ratio)
  try {
    const cwd = tempDir('ra-bench-')
    const feed = 'bench'
    const video = startStandIn(path.join(cwd, feed), {})
    await sleep(400)
    const tool = startTool([feed, '--format', 'pulse', '--device', fast.source, '--no-drift-fix'], {
      cwd,
      env: pulse.env,
    })
    await tool.recording(path.join(cwd, `${feed}-audio.wav`), 20000)
    await sleep(seconds * 1000)
    await video.stop()
    tool.ctrlC()
    const result = await tool.exited
    if (result.code !== 0) throw new Error(`${name}: record-audio exited ${result.code}: ${result.stderr}`)
    const syncFile = path.join(cwd, `${feed}-audio-sync.json`)
    const sync = JSON.parse(fs.readFileSync(syncFile, 'utf8'))
    const score = (muxedFile) => scoreClicks(muxedFile, video)
    const mux = run('bash', ['-c', sync.muxCommand])
    if (mux.status !== 0) throw new Error(`${name}: mux failed: ${mux.stderr}`)
    const plain = path.join(cwd, 'no-clock-sync.json')
    fs.writeFileSync(plain, JSON.stringify({ ...sync, audioClockRatio: 1 }))
    const plainMuxed = path.join(cwd, 'no-clock.mp4')
    const again = run(
      process.execPath,
      [path.join(ROOT, 'dist', 'record-audio.mjs'), 'mux', plain, '--muxed-out', plainMuxed],
      {
        cwd,
        env: pulse.env,
      },
    )
    if (again.status !== 0) throw new Error(`${name}: mux without the clock failed: ${again.stderr}`)
    return {
      name,
      measuredPpm: sync.audioClockPpm,
      uncertaintyPpm: sync.audioClockUncertaintyPpm,
      truePpm: (ratio - 1) * 1e6,
      applied: sync.audioClockRatio !== 1,
      tool: score(sync.muxedFile),
      without: score(plainMuxed),
      seconds,
    }
  } finally {
    await fast.stop()
  }
}

/**
 * The audio's first sample against physical truth, `recordings` times: a fresh pipe source each time
 * (its writer's clicks name their second: the truth is when it wrote the WAV's first sample), or the
 * null sink's monitor with the click player in it (its truth, a click at its whole second, includes
 * the player's ~20 ms buffer: a witness of the difference between stamp and check, not of either).
 * Errors in ms, + = the tool says later than the truth.
 */
async function firstSampleScenario(pulse, name, { recordings, seconds, pipe }) {
  const runs = []
  for (let k = 0; k < recordings; k++) {
    const source = pipe ? await startPipeSource(pulse) : null
    try {
      const cwd = tempDir('ra-bench-')
      const tool = startTool(['first', '--format', 'pulse', '--device', source ? source.source : pulse.source], {
        cwd,
        env: pulse.env,
      })
      await tool.recording(path.join(cwd, 'first-audio.wav'), 20000)
      await sleep(seconds * 1000)
      tool.ctrlC()
      const result = await tool.exited
      if (result.code !== 0) throw new Error(`${name}: record-audio exited ${result.code}: ${result.stderr}`)
      const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'first-audio-sync.json'), 'utf8'))
      const samples = decodeAudio(sync.audioFile)
      let truthS
      if (source) truthS = firstSampleTruth(source, samples)
      else {
        // The first click after the first second, at its whole second by the stamp's count.
        const onset = clickOnsets(samples).find((i) => i / RATE > 0.05)
        const second = Math.round(sync.audioStartStampEpochS + onset / RATE)
        truthS = second - onset / RATE
      }
      const ms = (epochS) => (epochS == null ? NaN : (epochS - truthS) * 1000)
      runs.push({
        stampMs: ms(sync.audioStartStampEpochS),
        envelopeMs: ms(sync.audioStartEnvelopeEpochS),
        usedMs: ms(sync.audioStartEpochS),
        check: sync.audioStartCheck,
        uncertaintyMs: sync.audioStartUncertaintyS * 1000,
      })
    } finally {
      await source?.stop()
    }
  }
  return { name, seconds, runs }
}

const loadAverage = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')

function coldNpxMs() {
  const packDir = tempDir('ra-bench-pack-')
  const packed = run('npm', ['pack', '--json', '--pack-destination', packDir], { cwd: ROOT })
  const tarball = path.join(packDir, JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[/m)))[0].filename)
  const times = []
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now()
    const out = run(
      'npx',
      ['--yes', '--cache', tempDir('ra-bench-cache-'), `--package=${tarball}`, 'record-audio', '--version'],
      { cwd: tempDir('ra-bench-empty-') },
    )
    if (out.status !== 0) throw new Error(out.stderr)
    times.push(Date.now() - t0)
  }
  return median(times)
}

const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '—')

const pulse = await startPulse({ tone: false })
const clicks = startClickStream(pulse.env, 'ra_sink')
await sleep(1000)
const rows = []
const fastRows = []
const twoCards = []
const firstRows = []
const loads = [loadAverage()]
try {
  const short = quick ? 8 : 20
  if (!clockOnly) {
    const recordings = quick ? 2 : 5
    firstRows.push(
      await firstSampleScenario(pulse, 'pipe-source microphone', { recordings, seconds: 6, pipe: true }),
      await firstSampleScenario(pulse, 'null sink, click player in it', { recordings, seconds: 6, pipe: false }),
    )
    loads.push(loadAverage())
  }
  if (!clockOnly && !firstOnly) {
    rows.push(await scenario(pulse, 'default (ULID, 30 ms first-frame gap)', { seconds: short, plot: true }))
    rows.push(
      await scenario(pulse, 'bursty sink (2 s latency)', { seconds: short, env: { PULSE_LATENCY_MSEC: '2000' } }),
    )
    rows.push(await scenario(pulse, 'drift (real fps 1 % below nominal)', { seconds: quick ? 20 : 60, realFps: 29.7 }))
    rows.push(await scenario(pulse, 'timesync file', { seconds: short, timesync: true }))
    rows.push(await scenario(pulse, 'a 1.5 s ~/.bashrc, no SHLVL', { seconds: 4, slowBashrcS: 1.5 }))
  }
  if (!firstOnly) {
    fastRows.push(await fastCardScenario(pulse, 'card clock 1000 ppm fast', { seconds: quick ? 30 : 60, ratio: 1.001 }))
    fastRows.push(await fastCardScenario(pulse, 'card clock on time', { seconds: quick ? 30 : 60, ratio: 1 }))
    twoCards.push(...(await twoCardsScenario(pulse, { seconds: quick ? 30 : 60, ratios: [1.001, 1] })))
  }
} finally {
  clicks.stop()
  await pulse.stop()
}

if (firstRows.length) {
  console.log(
    "\nThe audio's first sample against physical truth, ms (+ = placed later than the truth; target |with the check| ≤ 5 ms)",
  )
  console.log(`load average (1, 5, 15 min) before: ${loads[0]}, after: ${loads[1]}\n`)
  console.log('| scenario | recording | stamp alone | with the check | envelope | check | uncertainty |')
  console.log('|---|---|---|---|---|---|---|')
  for (const f of firstRows)
    for (const [k, r] of f.runs.entries())
      console.log(
        `| ${f.name} (${f.seconds} s) | ${k + 1} | ${fmt(r.stampMs)} | ${fmt(r.usedMs)} | ${fmt(r.envelopeMs)} | ${r.check} | ${fmt(r.uncertaintyMs)} |`,
      )
  for (const f of firstRows) {
    const worst = (key) => Math.max(...f.runs.map((r) => Math.abs(r[key])))
    console.log(
      `\n${f.name}: worst |stamp alone| ${fmt(worst('stampMs'))} ms, worst |with the check| ${fmt(worst('usedMs'))} ms`,
    )
  }
}
if (firstOnly) process.exit(0)

console.log('\nSync error of the muxed file, ms (white frame vs click; + means the sound comes late)\n')
console.log(
  '| scenario | pairs | record-audio median | max abs | at the end | in-server cassette (median) | spawn time as audio start (median) | video anchor | true first-frame gap after the anchor | frame period |',
)
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const r of rows)
  console.log(
    `| ${r.name} | ${r.pairs} | ${fmt(r.toolMedianMs)} | ${fmt(r.toolMaxMs)} | ${fmt(r.toolEndMs)} | ${fmt(r.cassetteMedianMs)} | ${fmt(r.spawnMedianMs)} | ${r.videoStartSource}${r.itsscale ? `, itsscale ${r.itsscale.toFixed(5)}` : ''} | ${fmt(r.videoTrueGapMs)} | ${fmt(r.framePeriodMs)} |`,
  )
console.log('\nAudio anchor (its own check: samples vs wall time, and what it removes against the spawn time)\n')
console.log('| scenario | source | doubtful | first sample after spawn, ms |')
console.log('|---|---|---|---|')
for (const r of rows)
  console.log(`| ${r.name} | ${r.audioStartSource} | ${r.audioDoubtful} | ${fmt(r.audioVsSpawnMs)} |`)
console.log(
  "\nThe sound card's clock (a pipe source fed at the rate shown; physical error: click at its wall-clock second vs the white frame)\n",
)
console.log(
  '| scenario | s | measured ppm | true ppm | applied | pairs | record-audio: median, ms | first → last pair, ms | clock left out: median, ms | first → last pair, ms |',
)
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const f of fastRows)
  console.log(
    `| ${f.name} | ${f.seconds} | ${fmt(f.measuredPpm, 0)} ± ${fmt(f.uncertaintyPpm, 0)} | ${fmt(f.truePpm, 0)} | ${f.applied} | ${f.tool.pairs} | ${fmt(f.tool.medianMs)} | ${fmt(f.tool.driftMs)} | ${fmt(f.without.medianMs)} | ${fmt(f.without.driftMs)} |`,
  )
console.log(
  '\nTwo sound cards in one recording, each on its own clock (pipe sources; the same physical error, per audio stream)\n',
)
console.log(
  "| stream | s | measured ppm | true ppm | applied | played at (asetrate P/Q) | pairs | record-audio: median, ms | first → last pair, ms | on the first card's clock: first → last, ms |",
)
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const c of twoCards)
  console.log(
    `| ${c.name} | ${c.seconds} | ${fmt(c.measuredPpm, 0)} ± ${fmt(c.uncertaintyPpm, 0)} | ${fmt(c.truePpm, 0)} | ${c.applied} | ${c.speed ? `${c.speed.nudgeHz ? `${c.speed.nudgeHz} Hz, then ` : ''}${c.speed.asHz}/${c.speed.upHz}` : 'untouched'} | ${c.tool.pairs} | ${fmt(c.tool.medianMs)} | ${fmt(c.tool.driftMs)} | ${fmt(c.onFirst.driftMs)} |`,
  )
if (clockOnly) process.exit(0)
const drift = rows.find((r) => r.name.startsWith('drift'))
console.log('\nCost\n')
console.log('| what | measured | target |')
console.log('|---|---|---|')
for (const r of rows)
  console.log(`| ctrl-c → command on screen, ${r.name} | ${fmt(r.ctrlCToCommandMs, 0)} ms | ≤ 500 ms |`)
console.log(
  `| the tool's CPU while recording (${quick ? 20 : 60} s, ffmpeg excluded) | ${fmt(drift.cpuShare * 100, 2)} % of a core | ≤ 1 % |`,
)
console.log(`| the tool's peak RSS | ${fmt(drift.rssMb)} MB | ≤ 80 MB |`)
console.log(
  `| cold npx --package=<tarball> record-audio --version (empty npm cache) | ${fmt(coldNpxMs(), 0)} ms | ≤ 1000 ms |`,
)
for (const r of rows) for (const w of r.warnings ?? []) console.log(`\nnote (${r.name}): ${w}`)
console.log(`\n--plot of the default scenario: ${rows[0].plotFile}`)
