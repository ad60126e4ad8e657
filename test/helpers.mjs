import { after, before } from 'node:test'
// Real things for the tests: a private PulseAudio server with a null sink, a TracktorLive
// stand-in that writes <feed>/<ULID>.mp4 with mp4v in real time, and the tool run as a user would.
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const TOOL = path.join(ROOT, 'dist', 'record-audio.mjs')

const PULSE_PACKAGES = 'ffmpeg pulseaudio pulseaudio-utils libasound2-plugins'
const PIPEWIRE_PACKAGES = 'pipewire pipewire-pulse wireplumber dbus pulseaudio-utils'

/** A missing tool is a failure, never a skip: CI installs them, and so must a developer. */
export function requireBinary(name, packages = PULSE_PACKAGES) {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
  if (found.status !== 0) throw new Error(`${name} is not installed: run .ci/run, or apt-get install ${packages}`)
  return found.stdout.trim()
}

export function tempDir(prefix = 'ra-test-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix))
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
/** An independent ULID encoder (time part per the ULID spec, random tail). */
export function ulidAt(ms) {
  let head = ''
  for (let i = 0; i < 10; i++) {
    head = CROCKFORD[ms % 32] + head
    ms = Math.floor(ms / 32)
  }
  let tail = ''
  for (let i = 0; i < 16; i++) tail += CROCKFORD[Math.floor(Math.random() * 32)]
  return head + tail
}

/** Running, not a zombie: an orphan that has exited waits for init to reap it, which can take a while. */
export function alive(pid) {
  try {
    return !/^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  } catch {
    return false
  }
}

export async function waitFor(predicate, timeoutMs, what) {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (await predicate()) return
    await sleep(50)
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** ffmpeg processes working in `dir` (each test has its own temp dir, so this finds only its own). */
export function ffmpegPidsIn(dir) {
  const pids = []
  const real = fs.realpathSync(dir)
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      if (
        fs.readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === 'ffmpeg' &&
        fs.readlinkSync(`/proc/${entry}/cwd`) === real
      )
        pids.push(+entry)
    } catch {
      /* exited, or not ours to read */
    }
  }
  return pids
}

/** A PulseAudio server for a whole test file: started before its first test, stopped after its last. */
export function usePulse(options) {
  return useSoundServer('pulse', options)
}

/**
 * The sound servers the tests run on, each serving PulseAudio clients (`-f pulse`, and ALSA's
 * `default` through the pulse plugin): PulseAudio itself, and PipeWire through pipewire-pulse
 * (current Ubuntu and Fedora).
 */
export const SOUND_SERVERS = ['pulse', 'pipewire']

/** startPulse or startPipeWire, by name: the same object either way. */
export function startSoundServer(name, options) {
  if (name === 'pulse') return startPulse(options)
  if (name === 'pipewire') return startPipeWire(options)
  throw new Error(`no sound server ${name}`)
}

/** A sound server (SOUND_SERVERS) for a whole test file: started before its first test, stopped after its last. */
export function useSoundServer(name, options) {
  const server = {}
  before(async () => {
    Object.assign(server, await startSoundServer(name, options))
  })
  after(async () => {
    await server.stop?.()
  })
  return server
}

/** The first sample past half the tone's height: AAC's pre-echo before an onset stays well below it. */
export function firstSound(samples) {
  let peak = 0
  for (const x of samples) peak = Math.max(peak, Math.abs(x))
  return samples.findIndex((x) => Math.abs(x) > peak / 2)
}

/**
 * A PulseAudio server of our own: private runtime dir, a null sink, and a tone playing into it
 * from before any capture starts (an idle null sink's timing is worse than a live one's).
 */
export async function startPulse({ tone: playTone = true } = {}) {
  requireBinary('pulseaudio')
  requireBinary('pactl')
  requireBinary('ffmpeg')
  const dir = tempDir('ra-pulse-')
  const runtime = path.join(dir, 'run')
  fs.mkdirSync(runtime, { mode: 0o700 })
  // ALSA's `default` routed to this server through the pulse plugin, as on a desktop Linux.
  fs.writeFileSync(path.join(dir, '.asoundrc'), 'pcm.!default { type pulse }\nctl.!default { type pulse }\n')
  const env = { ...process.env, XDG_RUNTIME_DIR: runtime, HOME: dir, PULSE_SERVER: `unix:${runtime}/native` }
  delete env.PULSE_SINK
  delete env.PULSE_SOURCE
  const server = spawn(
    'pulseaudio',
    [
      '-n',
      '--daemonize=no',
      '--exit-idle-time=-1',
      '--use-pid-file=no',
      '--disallow-exit=yes',
      '--log-target=stderr',
      '--log-level=error',
      '-L',
      `module-native-protocol-unix auth-anonymous=1 socket=${runtime}/native`,
      '-L',
      'module-null-sink sink_name=ra_sink rate=48000 channels=1',
    ],
    { env, stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let serverLog = ''
  server.stderr.on('data', (d) => {
    serverLog += d
  })
  await waitFor(
    () => spawnSync('pactl', ['info'], { env }).status === 0 || server.exitCode !== null,
    10000,
    'PulseAudio to answer',
  )
  if (server.exitCode !== null) throw new Error(`PulseAudio did not start: ${serverLog}`)
  const tone = playTone ? await playTone440(env) : null
  return {
    server: 'pulse',
    env,
    dir,
    source: 'ra_sink.monitor',
    async stop() {
      for (const child of [tone, server].filter(Boolean)) await stopChild(child)
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** A 440 Hz tone into the null sink ra_sink, from before any capture starts, as long as the server runs. */
async function playTone440(env) {
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-re',
    '-f',
    'lavfi',
    '-i',
    'sine=frequency=440:sample_rate=48000',
  ]
  const tone = spawn('ffmpeg', [...args, '-ac', '1', '-f', 'pulse', '-device', 'ra_sink', 'tone'], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  await sleep(500)
  if (tone.exitCode !== null) throw new Error('the tone into the null sink did not start')
  return tone
}

/** SIGTERM to a child we started, and its exit awaited (SIGKILL after 5 s: a teardown must not hang). */
async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGTERM')
  const late = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(late)
}

/**
 * A PipeWire of our own, serving PulseAudio clients as on current Ubuntu and Fedora: a private
 * runtime dir and session bus (dbus-daemon --session), pipewire, wireplumber (the session manager:
 * without it no stream is linked) and pipewire-pulse, then the same null sink and tone as
 * startPulse, through pactl. Same object as startPulse; stop() ends only the processes started here.
 */
export async function startPipeWire({ tone: playTone = true } = {}) {
  for (const name of ['pipewire', 'wireplumber', 'pipewire-pulse', 'dbus-daemon', 'pactl', 'ffmpeg'])
    requireBinary(name, PIPEWIRE_PACKAGES)
  const dir = tempDir('ra-pipewire-')
  const runtime = path.join(dir, 'run')
  fs.mkdirSync(runtime, { mode: 0o700 })
  fs.writeFileSync(path.join(dir, '.asoundrc'), 'pcm.!default { type pulse }\nctl.!default { type pulse }\n')
  const env = {
    ...process.env,
    XDG_RUNTIME_DIR: runtime,
    HOME: dir,
    XDG_CONFIG_HOME: path.join(dir, 'config'),
    XDG_STATE_HOME: path.join(dir, 'state'), // wireplumber's remembered volumes and defaults
    DBUS_SESSION_BUS_ADDRESS: `unix:path=${runtime}/bus`,
    PULSE_SERVER: `unix:${runtime}/pulse/native`,
  }
  for (const key of ['PULSE_SINK', 'PULSE_SOURCE', 'PIPEWIRE_REMOTE', 'PIPEWIRE_RUNTIME_DIR', 'DISPLAY'])
    delete env[key]
  const started = [] // in start order; stopped in reverse
  let log = ''
  const start = (command, args = []) => {
    const child = spawn(command, args, { env, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr.on('data', (d) => {
      log += `${command}: ${d}`
    })
    started.push(child)
    return child
  }
  const stop = async () => {
    for (const child of started.reverse()) await stopChild(child)
    fs.rmSync(dir, { recursive: true, force: true })
  }
  const ready = async (what, predicate) => {
    await waitFor(() => predicate() || started.some((c) => c.exitCode !== null), 15000, what).catch(() => {})
    const died = started.find((c) => c.exitCode !== null)
    if (died || !predicate()) {
      await stop()
      throw new Error(`PipeWire: ${died ? `${died.spawnfile} exited ${died.exitCode}` : `no ${what}`}: ${log}`)
    }
  }
  start('dbus-daemon', ['--session', '--nofork', '--nopidfile', `--address=unix:path=${runtime}/bus`])
  await ready('session bus', () => fs.existsSync(path.join(runtime, 'bus')))
  start('pipewire')
  await ready('pipewire socket', () => fs.existsSync(path.join(runtime, 'pipewire-0')))
  start('wireplumber')
  start('pipewire-pulse')
  await ready('pipewire-pulse answering', () => spawnSync('pactl', ['info'], { env }).status === 0)
  const sink = spawnSync(
    'pactl',
    ['load-module', 'module-null-sink', 'sink_name=ra_sink', 'rate=48000', 'channels=1'],
    {
      env,
      encoding: 'utf8',
    },
  )
  if (sink.status !== 0) {
    await stop()
    throw new Error(`PipeWire: module-null-sink: ${sink.stderr}`)
  }
  const listed = () => spawnSync('pactl', ['list', 'short', 'sources'], { env, encoding: 'utf8' }).stdout ?? ''
  await ready('ra_sink.monitor', () => listed().includes('ra_sink.monitor'))
  if (playTone)
    try {
      started.push(await playTone440(env))
    } catch (error) {
      await stop()
      throw error
    }
  return { server: 'pipewire', env, dir, source: 'ra_sink.monitor', stop }
}

/**
 * What TracktorLive does: mint the ULID when the writer opens, then write mp4v frames in real
 * time; the mp4 gets its moov box only when the writer is released (here: `q`).
 */
export function startVideoRecorder(feedDir, { fps = 30, size = '160x120' } = {}) {
  fs.mkdirSync(feedDir, { recursive: true })
  const ulidEpochMs = Date.now()
  const file = path.join(feedDir, `${ulidAt(ulidEpochMs)}.mp4`)
  const child = spawn(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-re',
      '-f',
      'lavfi',
      '-i',
      `testsrc=size=${size}:rate=${fps}`,
      '-c:v',
      'mpeg4',
      '-tag:v',
      'mp4v',
      '-f',
      'mp4',
      file,
    ],
    { stdio: ['pipe', 'ignore', 'inherit'] },
  )
  const exited = new Promise((resolve) => child.once('exit', resolve))
  return {
    file,
    ulidEpochMs,
    async stop() {
      child.stdin.end('q')
      await exited
    },
  }
}

/**
 * The tool as a user runs it in a terminal: its own process group (as a shell job), so that
 * ctrl-c can be sent to the whole group with kill(-pid, 'SIGINT').
 */
export function startTool(args, { cwd, env = process.env, command = [process.execPath, TOOL] } = {}) {
  const child = spawn(command[0], [...command.slice(1), ...args], {
    cwd,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => {
    stdout += d
  })
  child.stderr.on('data', (d) => {
    stderr += d
  })
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  return {
    child,
    get stdout() {
      return stdout
    },
    get stderr() {
      return stderr
    },
    exited: exited.then((r) => ({ ...r, stdout, stderr })),
    /** Wait until ffmpeg has opened the device and written the WAV's header (the tool reserves the name empty). */
    async recording(wavPath, timeoutMs = 10000) {
      const started = () => fs.existsSync(wavPath) && fs.statSync(wavPath).size > 0
      await waitFor(() => started() || child.exitCode !== null, timeoutMs, `${wavPath} to appear`)
      if (child.exitCode !== null) throw new Error(`record-audio exited early: ${stderr}`)
    },
    ctrlC() {
      process.kill(-child.pid, 'SIGINT')
    },
  }
}

export function run(file, args, options = {}) {
  return spawnSync(file, args, { encoding: 'utf8', ...options })
}

export function ffprobeStreams(file) {
  const probe = run('ffprobe', [
    '-v',
    'error',
    '-show_entries',
    'stream=codec_type,codec_name,duration,nb_frames,sample_rate',
    '-of',
    'json',
    file,
  ])
  if (probe.status !== 0) throw new Error(`ffprobe ${file}: ${probe.stderr}`)
  return JSON.parse(probe.stdout).streams
}

/** Decoded mono s16 samples of a file's audio, as ffmpeg decodes it (edit lists applied). */
export function decodeAudio(file, sampleRate = 48000, stream = 0) {
  const out = spawnSync(
    'ffmpeg',
    ['-v', 'error', '-i', file, '-map', `0:a:${stream}`, '-ac', '1', '-ar', String(sampleRate), '-f', 's16le', '-'],
    { maxBuffer: 1 << 30 },
  )
  if (out.status !== 0) throw new Error(`decoding ${file}: ${out.stderr}`)
  return new Int16Array(out.stdout.buffer, out.stdout.byteOffset, out.stdout.length / 2)
}

/** Reads a WAV's header independently of the tool: RIFF sizes must match the file. */
export function readWav(file) {
  const buffer = fs.readFileSync(file)
  const riff = buffer.toString('latin1', 0, 4)
  let offset = 12
  let fmt
  while (offset + 8 <= buffer.length) {
    const id = buffer.toString('latin1', offset, offset + 4)
    const size = buffer.readUInt32LE(offset + 4)
    if (id === 'fmt ')
      fmt = {
        channels: buffer.readUInt16LE(offset + 10),
        sampleRate: buffer.readUInt32LE(offset + 12),
        bits: buffer.readUInt16LE(offset + 22),
      }
    if (id === 'data') {
      return {
        riff,
        riffSize: buffer.readUInt32LE(4),
        fileBytes: buffer.length,
        dataOffset: offset + 8,
        dataSize: size,
        ...fmt,
        samples: Math.floor(size / ((fmt.channels * fmt.bits) / 8)),
      }
    }
    offset += 8 + size + (size % 2)
  }
  throw new Error(`${file}: no data chunk`)
}

/**
 * A microphone whose clock runs `ratio` times its nominal 48 kHz: a PulseAudio pipe source fed
 * from a FIFO at 48000 × ratio samples per wall-clock second: a quiet tone, and a 2 ms click at
 * every whole epoch second, placed by wall time (the physical truth for the bench).
 */
export async function startFastSource(pulse, ratio) {
  const fifo = path.join(pulse.dir, `fast-${Date.now()}`) // PulseAudio makes the FIFO
  const name = `ra_fast_${Date.now()}`
  const moduleId = loadPipeSource(pulse, name, fifo)
  const out = fs.createWriteStream(fifo)
  out.on('error', () => {})
  const rate = 48000 * ratio
  const startedMs = Date.now()
  let written = 0
  const timer = setInterval(() => {
    const due = Math.floor(((Date.now() - startedMs) / 1000) * rate)
    if (due <= written) return
    const samples = new Int16Array(due - written)
    for (let i = 0; i < samples.length; i++) {
      const wallS = startedMs / 1000 + (written + i) / rate
      const click = wallS - Math.floor(wallS) < 0.002
      samples[i] = click ? ((written + i) % 2 ? 24000 : -24000) : Math.round(3000 * Math.sin((written + i) / 10))
    }
    written = due
    // Nobody reading yet: drop, rather than queue audio that would arrive late and stamped new.
    if (out.writableLength < 1 << 16) out.write(Buffer.from(samples.buffer))
  }, 10)
  await sleep(500)
  return {
    source: name,
    rate,
    async stop() {
      clearInterval(timer)
      out.destroy()
      spawnSync('pactl', ['unload-module', moduleId], { env: pulse.env })
    },
  }
}

/** startPipeSource's clicks name their second modulo this: a WAV must begin within it of the writer's start. */
const CLICK_CODE_S = 10

/**
 * A microphone whose capture times are known: a PulseAudio pipe source (works under PipeWire's
 * pulse server too) fed through its FIFO at the wall clock's pace. Every few ms the writer writes
 * each sample whose time has come (sample i's time: startEpochS + i / rate), so the newest sample of
 * each write is written the moment it is due: a sample's time is when it entered the server, its
 * capture. Quiet noise, and at each whole epoch second s a click whose length, 1 + (s mod 10) ms,
 * names its second (firstSampleTruth). `server`: an object with the server's env and a dir for the FIFO.
 *
 * `drain`: a reader of our own (parec, 20 ms) keeps the source running from before the first write, as
 * a microphone's samples flow whether or not anyone records, so the writer never runs ahead of the
 * reads. Needed on PipeWire: its pipe source (module-pipe-tunnel under pipewire-pulse) reads the FIFO
 * only while linked, at most one graph quantum per cycle at the graph's clock, so samples queued while
 * it was idle are never caught up: they reach every capture that late (measured: 0.6–0.8 s). PulseAudio
 * reads whatever the FIFO holds as soon as a capture starts.
 */
export async function startPipeSource(
  server,
  { rate = 48000, name = `ra_pipe_${Date.now()}`, drain = false, clicksEpochS = null } = {},
) {
  const fifo = path.join(server.dir, `${name}.fifo`) // the module makes it
  const moduleId = loadPipeSource(server, name, fifo, rate)
  let drainer = null
  if (drain) {
    drainer = spawn(
      'parec',
      [`--device=${name}`, '--raw', `--rate=${rate}`, '--channels=1', '--format=s16le', '--latency-msec=20'],
      {
        env: server.env,
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    )
    const listed = () =>
      spawnSync('pactl', ['list', 'short', 'source-outputs'], { env: server.env, encoding: 'utf8' }).stdout ?? ''
    await waitFor(() => listed().trim().length > 0, 5000, 'the drain reader to connect')
    await sleep(300) // the link made and the source running before the first sample is written
  }
  // Non-blocking, so that a full FIFO (no one recording: the server stops reading) never stalls the
  // tests; a server that opens its end late (ENXIO until then) is waited for.
  let fd
  await waitFor(
    () => {
      try {
        fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
        return true
      } catch (error) {
        if (error.code === 'ENXIO' || error.code === 'ENOENT') return false
        throw error
      }
    },
    5000,
    `the pipe source to open ${fifo}`,
  )
  // Date.now() truncates to the ms: its next tick is the one moment it reads the wall clock exactly.
  for (const ms = Date.now(); Date.now() === ms; );
  const startNs = process.hrtime.bigint()
  const startEpochS = Date.now() / 1000
  const nowS = () => startEpochS + Number(process.hrtime.bigint() - startNs) / 1e9
  let written = 0
  let pending = Buffer.alloc(0)
  let lateWrites = 0 // the FIFO was full: samples entered the server later than their time
  let maxLagS = 0
  const sampleAt = (i) => {
    const tS = startEpochS + i / rate
    // clicksEpochS (a list the caller may add to): a 2 ms burst at each of those times, and nothing else.
    if (clicksEpochS)
      return clicksEpochS.some((c) => tS >= c && tS < c + 0.002)
        ? i % 12 < 6
          ? 20000
          : -20000
        : Math.round((Math.random() - 0.5) * 60)
    const second = Math.floor(tS)
    const clickS = (1 + (second % CLICK_CODE_S)) / 1000
    if (tS - second < clickS) return i % 2 ? 24000 : -24000
    return Math.round((Math.random() - 0.5) * 64)
  }
  const write = () => {
    const t = nowS()
    const due = Math.floor((t - startEpochS) * rate)
    if (due > written) {
      const samples = new Int16Array(due - written)
      for (let k = 0; k < samples.length; k++) samples[k] = sampleAt(written + k)
      written = due
      pending = Buffer.concat([pending, Buffer.from(samples.buffer)])
    }
    while (pending.length) {
      let n
      try {
        n = fs.writeSync(fd, pending)
      } catch (error) {
        if (error.code !== 'EAGAIN') throw error
        lateWrites++
        return
      }
      pending = pending.subarray(n)
    }
    maxLagS = Math.max(maxLagS, nowS() - t)
  }
  const timer = setInterval(write, 2)
  await sleep(300)
  return {
    source: name,
    rate,
    startEpochS,
    /** The time of the writer's sample i, epoch seconds: when it entered the server. */
    sampleEpochS: (i) => startEpochS + i / rate,
    get lateWrites() {
      return lateWrites
    },
    async stop() {
      clearInterval(timer)
      fs.closeSync(fd)
      if (drainer) await stopChild(drainer)
      spawnSync('pactl', ['unload-module', moduleId], { env: server.env })
    },
  }
}

/**
 * Quiet noise played into a sink with a short buffer (pacat, 20 ms), kept 0.3 s ahead: a live sink
 * whose monitor delivers steadily (ffmpeg's own pulse output buffers far more). `server`: its env.
 */
export function startNoisePlayer(server, sink) {
  requireBinary('pacat')
  const player = spawn(
    'pacat',
    ['--raw', '--playback', `--device=${sink}`, '--rate=48000', '--channels=1', '--format=s16le', '--latency-msec=20'],
    { env: server.env, stdio: ['pipe', 'ignore', 'inherit'] },
  )
  player.stdin.on('error', () => {})
  let untilS = Date.now() / 1000
  const timer = setInterval(() => {
    const count = Math.floor((Date.now() / 1000 + 0.3 - untilS) * 48000)
    if (count <= 0) return
    const samples = new Int16Array(count).map(() => Math.round((Math.random() - 0.5) * 64))
    untilS += count / 48000
    player.stdin.write(Buffer.from(samples.buffer))
  }, 10)
  return {
    async stop() {
      clearInterval(timer)
      player.stdin.end()
      if (player.exitCode === null) {
        player.kill('SIGTERM')
        await new Promise((resolve) => player.once('exit', resolve))
      }
    },
  }
}

/** Clicks in decoded samples: the first sample of each loud run and its length in samples. */
export function clicksIn(samples, threshold = 8000) {
  const found = []
  for (let i = 0; i < samples.length; i++) {
    if (Math.abs(samples[i]) <= threshold) continue
    let end = i
    while (end + 1 < samples.length && Math.abs(samples[end + 1]) > threshold) end++
    found.push({ index: i, length: end - i + 1 })
    i = end
  }
  return found
}

/**
 * When the WAV's first sample was captured, from the writer's own clock: the WAV's first whole
 * click is the writer's click of the one second in the CLICK_CODE_S after the writer started whose
 * code its length is, and the first sample came index / rate before it. Every later click must have
 * its second's code and agree to the sample: else the source dropped or repeated samples.
 */
export function firstSampleTruth(pipe, wavSamples) {
  const clicks = clicksIn(wavSamples).filter((c) => c.index > 0 && c.index + c.length < wavSamples.length)
  if (!clicks.length) throw new Error('no whole click in the WAV')
  const code = (c) => Math.round((c.length / pipe.rate) * 1000) - 1
  const from = Math.ceil(pipe.startEpochS)
  const first = from + ((((code(clicks[0]) - from) % CLICK_CODE_S) + CLICK_CODE_S) % CLICK_CODE_S)
  const truths = clicks.map((c) => {
    const second = first + Math.round((c.index - clicks[0].index) / pipe.rate)
    if (code(c) !== second % CLICK_CODE_S) throw new Error(`the click at sample ${c.index} is not its second's`)
    return second - c.index / pipe.rate
  })
  const spreadS = Math.max(...truths) - Math.min(...truths)
  if (spreadS > 1.5 / pipe.rate) throw new Error(`the clicks disagree by ${spreadS * 1000} ms: samples were dropped`)
  return truths[0]
}

export const listing = (dir) => fs.readdirSync(dir, { recursive: true }).map(String).sort()

/** A stand-in video and record-audio beside it for `recordS`, then `stop(tool)`; what it left. */
export async function recordThenStop(pulse, stop, { feed = 'feed', recordS = 2, env = {}, cwd = tempDir() } = {}) {
  const video = startVideoRecorder(path.join(cwd, feed))
  await sleep(300)
  const wavPath = path.join(cwd, `${feed}-audio.wav`)
  const tool = startTool([feed, '--format', 'pulse', '--device', pulse.source], { cwd, env: { ...pulse.env, ...env } })
  await tool.recording(wavPath)
  await sleep(recordS * 1000)
  await video.stop()
  const stopAtMs = Date.now()
  await stop(tool)
  const result = await tool.exited
  const syncPath = path.join(cwd, `${feed}-audio-sync.json`)
  const sync = fs.existsSync(syncPath) ? JSON.parse(fs.readFileSync(syncPath, 'utf8')) : null
  return { cwd, wavPath, result, stopAtMs, sync, tool }
}

/** record-audio recording into a fresh folder for `seconds`, with its ffmpeg's PID. */
export async function recordingFor(pulse, seconds) {
  const cwd = tempDir()
  const wavPath = path.join(cwd, 'feed-audio.wav')
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(wavPath)
  const recordingAtMs = Date.now()
  await sleep(seconds * 1000)
  const [ffmpegPid] = ffmpegPidsIn(cwd)
  if (!ffmpegPid) throw new Error(`ffmpeg is not recording: ${tool.stderr}`)
  return { cwd, wavPath, tool, ffmpegPid, recordingAtMs }
}

/** What every clean stop leaves: a finalized WAV with every sample up to the stop, the command, no ffmpeg. */
export function assertCompleteStop(s) {
  assert.equal(s.result.code, 0, s.result.stderr)
  const wav = readWav(s.wavPath)
  assert.equal(wav.riffSize, wav.fileBytes - 8, 'RIFF size finalized')
  assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes, 'data size finalized')
  const missingS = s.stopAtMs / 1000 - s.sync.audioStartEpochS - wav.samples / 48000
  assert.ok(missingS < 0.02, `every sample up to the stop: ${(missingS * 1000).toFixed(1)} ms missing`)
  assert.ok(s.sync.muxCommand, 'sync file written with the command')
  assert.deepEqual(ffmpegPidsIn(s.cwd), [], 'no ffmpeg left')
}

/**
 * What the real TracktorLive does with a live camera and -d -w (see ../shared/TRACKTORLIVE.md): the
 * tracking CSV's ULID minted in the constructor, t_init, the camera opened, the video's ULID minted,
 * then the first frames read in a burst (3 ms apart) from the camera's buffer, where they have
 * waited since `bufferedS` before the first read, then one read per camera frame. Each frame is
 * written to the mp4 (mp4v) and its row, `time` = read time − t_init, flushed to the CSV.
 */
export function startTracktorStandIn(
  feedDir,
  { fps = 30, bufferedS = 0.4, burstGapS = 0.003, latencyS = 0, flashesEpochS = null } = {},
) {
  fs.mkdirSync(feedDir, { recursive: true })
  const csvFile = path.join(feedDir, `${ulidAt(Date.now())}.csv`)
  const tInitS = Date.now() / 1000
  const csv = fs.openSync(csvFile, 'w')
  fs.writeSync(csv, 'time,x0,y0\n')
  let file
  let writer
  let firstFrameEpochS
  let stopped = false
  const done = (async () => {
    await sleep(100) // the camera opens
    const videoUlidMs = Date.now()
    file = path.join(feedDir, `${ulidAt(videoUlidMs)}.mp4`)
    writer = rawFrameWriter('64x48', fps, [...MP4V, file])
    const firstReadS = videoUlidMs / 1000 + 0.068
    firstFrameEpochS = firstReadS - bufferedS
    for (let k = 0; !stopped; k++) {
      // latencyS: each frame reaches the reader that long after it is taken (a camera's latency).
      const dueS = Math.max(firstReadS + k * burstGapS, firstFrameEpochS + k / fps + latencyS)
      const waitMs = dueS * 1000 - Date.now()
      if (waitMs > 0) await sleep(waitMs)
      const readS = Date.now() / 1000
      writer.stdin.write(
        Buffer.alloc(64 * 48, flashesEpochS ? litGrey(flashesEpochS, firstFrameEpochS + k / fps, fps) : 16 + (k % 200)),
      )
      fs.writeSync(csv, `${readS - tInitS},-1.0,-1.0\n`)
    }
    writer.stdin.end()
    await new Promise((resolve) => writer.once('exit', resolve))
    fs.closeSync(csv)
  })()
  return {
    csvFile,
    get file() {
      return file
    },
    get firstFrameEpochS() {
      return firstFrameEpochS
    },
    async stop() {
      stopped = true
      await done
    },
  }
}

/** A frame taken from `fromS` for a period: grey by how long a 0.1 s flash lit it (the flashes' epoch times). */
function litGrey(flashesEpochS, fromS, fps) {
  let lit = 0
  for (const on of flashesEpochS) lit += Math.max(0, Math.min(fromS + 1 / fps, on + 0.1) - Math.max(fromS, on))
  return Math.round(30 + 190 * lit * fps)
}

/** TracktorLive's source on PYTHONPATH: TRACKTORLIVE_SRC, else the copy beside the checkout; else an installed one. */
export function tracktorliveEnv(env) {
  const src = process.env.TRACKTORLIVE_SRC ?? path.resolve(ROOT, '..', 'shared', 'tracktorlive')
  return fs.existsSync(path.join(src, 'tracktorlive', 'server.py')) ? { ...env, PYTHONPATH: src } : env
}

/** MP4V in an mp4, as OpenCV's VideoWriter writes TracktorLive's recordings. */
export const MP4V = ['-c:v', 'mpeg4', '-tag:v', 'mp4v', '-q:v', '5', '-f', 'mp4']

/** ffmpeg reading raw gray frames of `size` (WxH) from its stdin at `fps`, writing with `output` args. */
export function rawFrameWriter(size, fps, output) {
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'gray',
    '-s',
    size,
    '-r',
    String(fps),
  ]
  const writer = spawn('ffmpeg', [...args, '-i', '-', ...output], { stdio: ['pipe', 'ignore', 'inherit'] })
  writer.stdin.on('error', () => {})
  return writer
}

/**
 * The mark the summary's audio line should carry, by the rule the README states (not the tool's own
 * code): ✔ when the device's stamp and the samples' arrival agree (a plausible stamp, or one late by
 * under 10 ms) and the start is known within 40 ms; else a blank.
 */
export function expectedAudioMark(r) {
  const agreed =
    r.audioStartCheck === 'plausible' || (r.audioStartCheck === 'stamp-late' && -r.audioDeliveryLatencyS < 0.01)
  return agreed && (r.audioStartUncertaintyS ?? 0) <= 0.04 ? '✔' : ' '
}

/**
 * The ± the summary's video line should say for a record, by the README's rule: its offsetBoundsS either
 * way from the offset, `± N ms` when both sides round alike, else `+above/−below ms`.
 */
export function expectedPlusMinus(r) {
  // As the words say it: how far before or after the video, + further from it.
  const [nearMs, farMs] = r.offsetBoundsS.map((b) => Math.abs(b - r.offsetS) * 1000)
  const [belowMs, aboveMs] = r.offsetS < 0 ? [farMs, nearMs] : [nearMs, farMs]
  return Math.abs(aboveMs - belowMs) < 1
    ? `± ${Math.max(aboveMs, belowMs).toFixed(0)} ms`
    : `+${aboveMs.toFixed(0)}/−${belowMs.toFixed(0)} ms`
}

/** A seeded generator: the same "random" inputs on every run. */
export function seededRandom(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A PulseAudio (or pipewire-pulse) pipe source named `name` reading `fifo`, mono s16le; its module id. */
export function loadPipeSource(server, name, fifo, rate = 48000) {
  const loaded = spawnSync(
    'pactl',
    [
      'load-module',
      'module-pipe-source',
      `source_name=${name}`,
      `file=${fifo}`,
      'format=s16le',
      `rate=${rate}`,
      'channels=1',
    ],
    { env: server.env, encoding: 'utf8' },
  )
  if (loaded.status !== 0) throw new Error(`module-pipe-source: ${loaded.stderr}`)
  return loaded.stdout.trim()
}
