// What both benchmarks share: the clicking microphone, and finding flashes and clicks in a file.
import { spawn, spawnSync } from 'node:child_process'
import { run } from '../test/helpers.mjs'

export const RATE = 48000

export /**
 * The live microphone: noise at −60 dBFS and a 2 ms click for every whole epoch second, at its start
 * unless `clickAt(second)` (settable) names another moment near it, e.g. a camera's flash.
 */
function startClickStream(env, sink) {
  const player = spawn(
    'pacat',
    ['--raw', '--playback', `--device=${sink}`, '--rate=48000', '--channels=1', '--format=s16le', '--latency-msec=20'],
    { env, stdio: ['pipe', 'ignore', 'inherit'] },
  )
  let stopping = false
  player.stdin.on('error', (error) => {
    if (!stopping) console.error('the click player stopped:', error.message)
  })
  let writtenUntilS = Date.now() / 1000
  const timer = setInterval(() => {
    // Keep 0.3 s queued for the player: the bench's own pauses (a synchronous ffprobe, a WAV read)
    // would otherwise starve it, and PulseAudio fills a starved stream with silence, which moves
    // every later click by that much.
    const nowS = Date.now() / 1000 + 0.3
    const count = Math.floor((nowS - writtenUntilS) * RATE)
    if (count <= 0) return
    const samples = new Int16Array(count)
    for (let i = 0; i < count; i++) {
      const t = writtenUntilS + i / RATE
      // a click moved by clickAt may fall in the second before or after its own
      const clicking = [-1, 0, 1].some((d) => {
        const clickS = stream.clickAt(Math.floor(t) + d)
        const intoClick = t - clickS
        if (intoClick >= 0 && intoClick < 1 / RATE) stream.played.push(clickS)
        return intoClick >= 0 && intoClick < 0.002
      })
      samples[i] = clicking ? (i % 2 ? 24000 : -24000) : Math.round((Math.random() - 0.5) * 64)
    }
    writtenUntilS += count / RATE
    player.stdin.write(Buffer.from(samples.buffer))
  }, 10)
  const stream = {
    env,
    sink,
    clickAt: (second) => second,
    played: [], // when each click was written to the player, epoch seconds
    stop() {
      stopping = true
      clearInterval(timer)
      player.stdin.end()
      player.kill('SIGTERM')
    },
  }
  return stream
}

export /** Presentation times of the white frames in a file, as the file states them (any frame size). */
function whiteFramePts(file) {
  const probe = run(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'frame=pts_time', '-of', 'csv=p=0', file],
    { maxBuffer: 1 << 26 },
  )
  const pts = probe.stdout.trim().split('\n').map(Number)
  const raw = spawnSync(
    'ffmpeg',
    ['-v', 'error', '-i', file, '-map', '0:v:0', '-vf', 'scale=64:48', '-f', 'rawvideo', '-pix_fmt', 'gray', '-'],
    { maxBuffer: 1 << 30 },
  ).stdout
  const frameBytes = 64 * 48
  const white = []
  for (let k = 0; k * frameBytes < raw.length; k++) {
    let sum = 0
    for (let i = k * frameBytes; i < (k + 1) * frameBytes; i++) sum += raw[i]
    if (sum / frameBytes > 128) white.push({ frame: k, ptsS: pts[k] })
  }
  return white
}

export /** Click onsets (sample indexes) in decoded audio: the first sample of each loud run. */
function clickOnsets(samples) {
  const onsets = []
  for (let i = 0; i < samples.length; i++) {
    if (Math.abs(samples[i]) > 8000) {
      onsets.push(i)
      i += RATE / 2
    }
  }
  return onsets
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN
}
