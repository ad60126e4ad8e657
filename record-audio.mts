#!/usr/bin/env node
// record-audio: record a microphone with ffmpeg beside a TracktorLive video recording; at ctrl-c,
// hand back a finalized WAV, the offset between audio and video, and the ffmpeg command that
// muxes them in sync. Run `record-audio --help`, or read README.md.

// ── Settings ─────────────────────────────────────────────────────────────────────────────────
// Edit these, or override any of them with its flag (shown after each). null means "work it out".
const FEED_ID: string | null = null         // <feed_id> or --feed-id: TracktorLive's feed id; its videos are in ./<feed_id>/
const AUDIO_INPUT_FMT: string | null = null // --format: alsa | pulse | avfoundation | dshow; null → alsa (Linux), avfoundation (macOS), dshow (Windows)
const AUDIO_DEVICE: string | null = null    // --device: null → "default" (alsa, pulse), ":0" (avfoundation); dshow has none: list with --format dshow
const AUDIO_SAMPLERATE = 48000              // --rate: samples per second, asked of the device and written to the WAV
const AUDIO_CHANNELS = 1                    // --channels: 1 = mono, 2 = stereo
const AUDIO_OUTFILE: string | null = null   // --out: null → ./<feed_id>-audio.wav (or -audio-2.wav … if taken); never overwritten
const SYNC_OUTFILE: string | null = null    // --sync-out: null → the WAV's name with -sync.json instead of .wav
const VIDEO_INFILE: string | null = null    // --video: null → the newest TracktorLive recording <ULID>.mp4 in ./<feed_id>/
const MUXED_OUTFILE: string | null = null   // --muxed-out: null → the video's path without .mp4, plus MUXED_SUFFIX
const MUXED_SUFFIX = '-with-audio.mp4'      // --muxed-suffix: appended to the video's name for the muxed file
const PATH_TO_FFMPEG = 'ffmpeg'             // --ffmpeg: ffmpeg's name on PATH or its full path; ffprobe is looked for beside it

import { $, which } from 'zx'
import minimist from 'minimist'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

// ── Settings and flags ───────────────────────────────────────────────────────────────────────

export type Platform = NodeJS.Platform
export const FORMATS = ['alsa', 'pulse', 'avfoundation', 'dshow'] as const
export type Format = (typeof FORMATS)[number]

export interface Settings {
  feedId: string
  format: Format
  device: string
  sampleRate: number
  channels: number
  audioFile: string | null // null: the default name, chosen when the recording starts
  syncFile: string | null
  videoFile: string | null
  muxedFile: string | null
  muxedSuffix: string
  ffmpeg: string
}

export interface MuxLater { syncFile: string; videoFile: string | null; muxedFile: string | null; muxedSuffix: string; ffmpeg: string }

export type Command =
  | { kind: 'help' } | { kind: 'version' }
  | { kind: 'record'; settings: Settings }
  | { kind: 'mux'; mux: MuxLater } // record-audio mux SYNC_FILE: the command again, e.g. once the video exists
  | { kind: 'repair'; file: string } // record-audio repair FILE.wav: sizes for a WAV whose writer was killed

/** The settings block as values, so that tests can run the same parsing with other defaults. */
export const FILE_DEFAULTS = {
  feedId: FEED_ID, format: AUDIO_INPUT_FMT, device: AUDIO_DEVICE, sampleRate: AUDIO_SAMPLERATE,
  channels: AUDIO_CHANNELS, audioFile: AUDIO_OUTFILE, syncFile: SYNC_OUTFILE, videoFile: VIDEO_INFILE,
  muxedFile: MUXED_OUTFILE, muxedSuffix: MUXED_SUFFIX, ffmpeg: PATH_TO_FFMPEG,
}
export type FileDefaults = typeof FILE_DEFAULTS

// flag → [settings key, what it is]; the help text is built from this table.
const FLAGS = {
  'feed-id': ['feedId', "TracktorLive feed id (or give it as the first argument); videos are looked for in ./<feed_id>/"],
  format: ['format', 'capture API: alsa | pulse (Linux), avfoundation (macOS), dshow (Windows)'],
  device: ['device', 'capture device, as ffmpeg names it for that format'],
  rate: ['sampleRate', 'sample rate in Hz'],
  channels: ['channels', 'number of channels'],
  out: ['audioFile', 'the WAV to write (never overwritten)'],
  'sync-out': ['syncFile', 'the JSON file with the timing and the mux command'],
  video: ['videoFile', 'the video to sync to, instead of the newest recording in ./<feed_id>/'],
  'muxed-out': ['muxedFile', 'the muxed mp4 that the printed command writes'],
  'muxed-suffix': ['muxedSuffix', "suffix for the muxed file's default name"],
  ffmpeg: ['ffmpeg', 'ffmpeg binary (name on PATH or full path)'],
} as const satisfies Record<string, [keyof FileDefaults, string]>

export class UsageError extends Error {}

export function defaultFormat(platform: Platform): Format {
  return platform === 'darwin' ? 'avfoundation' : platform === 'win32' ? 'dshow' : 'alsa'
}

/** The device list command the user should run for a format; the fix for most device errors. */
export function listDevicesHint(format: Format, ffmpeg = 'ffmpeg'): string {
  switch (format) {
    case 'pulse': return `${ffmpeg} -hide_banner -sources pulse (or: pactl list short sources)`
    case 'alsa': return `${ffmpeg} -hide_banner -sources alsa (or: arecord -L)`
    case 'avfoundation': return `${ffmpeg} -hide_banner -f avfoundation -list_devices true -i ""`
    case 'dshow': return `${ffmpeg} -hide_banner -list_devices true -f dshow -i dummy`
  }
}

export function defaultDevice(format: Format): string | null {
  if (format === 'alsa' || format === 'pulse') return 'default'
  if (format === 'avfoundation') return ':0' // no video, first audio device
  return null // dshow devices have no stable default name
}

const PLATFORM_FORMATS: Record<Format, Platform[]> = {
  alsa: ['linux'], pulse: ['linux', 'freebsd'], avfoundation: ['darwin'], dshow: ['win32'],
}

function integerIn(flag: string, raw: unknown, min: number, max: number): number {
  const text = String(raw)
  if (!/^\d+$/.test(text) || +text < min || +text > max)
    throw new UsageError(`--${flag} ${JSON.stringify(text)} is not a whole number from ${min} to ${max}`)
  return +text
}

/** Flags over the file's settings; every problem is a UsageError with a one-line message. */
export function parseCommand(argv: string[], platform: Platform, defaults: FileDefaults = FILE_DEFAULTS): Command {
  const unknown: string[] = []
  const args = minimist(argv, {
    string: Object.keys(FLAGS),
    boolean: ['help', 'version'],
    alias: { h: 'help' },
    unknown: (arg) => (arg.startsWith('-') && arg !== '-' ? (unknown.push(arg), false) : true),
  })
  if (unknown.length) throw new UsageError(`unknown flag ${unknown[0].split('=')[0]}: see record-audio --help`)
  if (args.help) return { kind: 'help' }
  if (args.version) return { kind: 'version' }
  for (const flag of Object.keys(FLAGS)) {
    if (Array.isArray(args[flag])) throw new UsageError(`--${flag} is given more than once: give it once`)
    if (args[flag] === '') throw new UsageError(`--${flag} needs a value: --${flag}=VALUE`)
  }
  const positional = args._.map(String)
  // `mux FILE.json` is the subcommand; a lone `mux` is still a feed id.
  if (positional[0] === 'mux' && positional.length === 2) return parseMuxLater(args, positional[1], defaults)
  if (positional[0] === 'repair' && positional.length === 2) {
    const other = Object.keys(FLAGS).find((flag) => args[flag] !== undefined)
    if (other) throw new UsageError(`--${other} has no effect with repair: give only the WAV file`)
    if (!/\.wav$/i.test(positional[1])) throw new UsageError(`repair takes a .wav file, not ${JSON.stringify(positional[1])}`)
    return { kind: 'repair', file: positional[1] }
  }
  if (positional.length > 1) throw new UsageError(`too many arguments (${positional.join(' ')}): give one feed id; quote names with spaces`)
  if (positional.length && args['feed-id'] !== undefined) throw new UsageError('the feed id is given twice (argument and --feed-id): give it once')

  const formatText = String(args.format ?? defaults.format ?? defaultFormat(platform))
  if (!(FORMATS as readonly string[]).includes(formatText))
    throw new UsageError(`--format ${JSON.stringify(formatText)} is unknown: use one of ${FORMATS.join(', ')}`)
  const format = formatText as Format
  if (!PLATFORM_FORMATS[format].includes(platform))
    throw new UsageError(`--format ${format} does not exist on ${platform}: use ${defaultFormat(platform)}`)

  const device = args.device ?? defaults.device ?? defaultDevice(format)
  if (device == null) throw new UsageError(`--format ${format} needs --device "audio=<name>": list the names with ${listDevicesHint(format)}`)

  const sampleRate = integerIn('rate', args.rate ?? defaults.sampleRate, 1000, 768000)
  const channels = integerIn('channels', args.channels ?? defaults.channels, 1, 64)

  const audioFile = args.out ?? defaults.audioFile
  if (audioFile != null && !/\.wav$/i.test(audioFile)) throw new UsageError(`--out ${JSON.stringify(audioFile)} must end in .wav`)
  const muxedSuffix = String(args['muxed-suffix'] ?? defaults.muxedSuffix)
  if (!/^[^\\/]*\.mp4$/i.test(muxedSuffix)) throw new UsageError(`--muxed-suffix ${JSON.stringify(muxedSuffix)} must end in .mp4 and hold no slashes`)
  const videoFile = args.video ?? defaults.videoFile
  if (videoFile != null && !/\.mp4$/i.test(videoFile)) throw new UsageError(`--video ${JSON.stringify(videoFile)} is not an .mp4: give the TracktorLive recording`)
  const muxedFile = args['muxed-out'] ?? defaults.muxedFile
  if (muxedFile != null && !/\.mp4$/i.test(muxedFile)) throw new UsageError(`--muxed-out ${JSON.stringify(muxedFile)} must end in .mp4`)

  const feedId = positional[0] ?? args['feed-id'] ?? defaults.feedId
  if (feedId == null) throw new UsageError('no feed id: run record-audio <feed_id>, the id TracktorLive writes videos under (./<feed_id>/)')
  if (feedId.trim() === '' || /[\\/]/.test(feedId) || feedId === '.' || feedId === '..')
    throw new UsageError(`feed id ${JSON.stringify(feedId)} is not a folder name: give the id alone, without slashes`)

  return {
    kind: 'record',
    settings: {
      feedId, format, device, sampleRate, channels, audioFile, muxedSuffix, videoFile, muxedFile,
      syncFile: args['sync-out'] ?? defaults.syncFile,
      ffmpeg: String(args.ffmpeg ?? defaults.ffmpeg),
    },
  }
}

const MUX_LATER_FLAGS = ['video', 'muxed-out', 'muxed-suffix', 'ffmpeg']

function parseMuxLater(args: minimist.ParsedArgs, syncFile: string, defaults: FileDefaults): Command {
  const other = Object.keys(FLAGS).find((flag) => args[flag] !== undefined && !MUX_LATER_FLAGS.includes(flag))
  if (other) throw new UsageError(`--${other} has no effect with mux: the sync file holds the recording's settings`)
  if (!/\.json$/i.test(syncFile)) throw new UsageError(`mux takes the sync file (.json) that a recording wrote, not ${JSON.stringify(syncFile)}`)
  const videoFile = args.video ?? null
  if (videoFile != null && !/\.mp4$/i.test(videoFile)) throw new UsageError(`--video ${JSON.stringify(videoFile)} is not an .mp4: give the TracktorLive recording`)
  const muxedFile = args['muxed-out'] ?? null
  if (muxedFile != null && !/\.mp4$/i.test(muxedFile)) throw new UsageError(`--muxed-out ${JSON.stringify(muxedFile)} must end in .mp4`)
  const muxedSuffix = String(args['muxed-suffix'] ?? defaults.muxedSuffix)
  if (!/^[^\\/]*\.mp4$/i.test(muxedSuffix)) throw new UsageError(`--muxed-suffix ${JSON.stringify(muxedSuffix)} must end in .mp4 and hold no slashes`)
  return { kind: 'mux', mux: { syncFile, videoFile, muxedFile, muxedSuffix, ffmpeg: String(args.ffmpeg ?? defaults.ffmpeg) } }
}

export function helpText(platform: Platform, defaults: FileDefaults = FILE_DEFAULTS): string {
  const format = (defaults.format ?? defaultFormat(platform)) as Format
  const shown: Record<string, string> = {
    feedId: defaults.feedId ?? '(required)',
    format: format,
    device: defaults.device ?? defaultDevice(format) ?? '(required for dshow)',
    audioFile: defaults.audioFile ?? './<feed_id>-audio.wav',
    syncFile: defaults.syncFile ?? "the WAV's name + -sync.json",
    videoFile: defaults.videoFile ?? 'newest ./<feed_id>/<ULID>.mp4',
    muxedFile: defaults.muxedFile ?? 'video path − .mp4 + suffix',
  }
  const rows = Object.entries(FLAGS).map(([flag, [key, what]]) =>
    `  --${(flag + '=…').padEnd(16)} ${what}\n${' '.repeat(21)}default: ${shown[key] ?? String(defaults[key])}`)
  return [
    'Usage: record-audio <feed_id> [flags]',
    '       record-audio mux <sync.json> [--video …] [--muxed-out …] [--muxed-suffix …] [--ffmpeg …]',
    '       record-audio repair <file.wav>',
    '',
    'Records audio until ctrl-c, then prints the ffmpeg command that muxes it into the newest',
    'TracktorLive video of that feed, with the offset between them corrected.',
    '',
    ...rows,
    '  -h, --help         this text',
    '  --version          the version',
    '',
    'mux <sync.json> prints the mux command again from a recording\'s sync file, e.g. once the video exists.',
    'repair <file.wav> writes the sizes into a WAV whose recording was killed (only the header changes).',
    '',
    `List capture devices: ${listDevicesHint(format)}`,
  ].join('\n')
}

// ── Names and times on disk ──────────────────────────────────────────────────────────────────

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
/** A TracktorLive recording is named <ULID>.mp4; nothing else in the folder is one. */
export const RECORDING_NAME = /^[0-7][0-9A-HJKMNP-TV-Z]{25}\.mp4$/i // a first digit above 7 overflows 48 bits

/** The 48-bit millisecond Unix time in a ULID's first 10 characters. */
export function ulidTimeMs(ulid: string): number {
  const head = ulid.slice(0, 10).toUpperCase()
  if (head.length !== 10 || head[0] > '7') throw new Error(`not a ULID: ${ulid}`)
  let ms = 0
  for (const char of head) {
    const digit = CROCKFORD.indexOf(char)
    if (digit < 0) throw new Error(`not a ULID: ${ulid}`)
    ms = ms * 32 + digit
  }
  return ms
}

/** TracktorLive's newest recording among file names: the greatest ULID, not the newest mtime. */
export function newestRecording(names: string[]): string | undefined {
  return names
    .filter((name) => RECORDING_NAME.test(name))
    .sort((a, b) => (a.toUpperCase() < b.toUpperCase() ? -1 : a.toUpperCase() > b.toUpperCase() ? 1 : 0))
    .at(-1)
}

/** `name.wav` if free, else `name-2.wav`, `name-3.wav`, … */
export function freeName(file: string, exists: (file: string) => boolean): string {
  if (!exists(file)) return file
  const ext = path.extname(file)
  const stem = file.slice(0, file.length - ext.length)
  for (let n = 2; ; n++) if (!exists(`${stem}-${n}${ext}`)) return `${stem}-${n}${ext}`
}

/** The sync file belongs to its WAV: same name, -sync.json for .wav. */
export function syncFileFor(audioFile: string): string {
  return audioFile.replace(/\.wav$/i, '') + '-sync.json'
}

export function muxedFileFor(videoFile: string, suffix: string): string {
  return videoFile.replace(/\.mp4$/i, '') + suffix
}

// ── The capture ──────────────────────────────────────────────────────────────────────────────

/** ffmpeg's arguments for the capture. No -y: an existing file makes ffmpeg refuse (-n). */
export function captureArgs(s: Pick<Settings, 'format' | 'device' | 'sampleRate' | 'channels'>, audioFile: string): string[] {
  // alsa and pulse stamp packets with epoch time; avfoundation and dshow do not, so there the
  // arrival time is the best epoch anchor ffmpeg can give (about one fragment late).
  const wallclock = s.format === 'avfoundation' || s.format === 'dshow' ? ['-use_wallclock_as_timestamps', '1'] : []
  // Asking the device for the rate and channel count avoids a resample; avfoundation takes no such options.
  const deviceSpec = s.format === 'avfoundation' ? [] : ['-sample_rate', String(s.sampleRate), '-channels', String(s.channels)]

  return [
    '-hide_banner', '-nostats', '-loglevel', 'info', // info prints the input's start: time
    ...wallclock, '-f', s.format, ...deviceSpec, '-i', s.device,
    '-map', '0:a:0', '-ar', String(s.sampleRate), '-ac', String(s.channels),
    '-c:a', 'pcm_s16le', '-rf64', 'auto', '-flush_packets', '1', '-f', 'wav', '-n', audioFile,
  ]
}

export interface AudioStart { epochS: number; source: 'ffmpeg-input-start' | 'ffmpeg-wallclock' | 'spawn-time' }

/** The epoch time of the first sample, from ffmpeg's `Input #0, <fmt>, from …` / `start: X` lines. */
export function parseInputStart(stderr: string, format: Format): AudioStart | undefined {
  const match = /^Input #0, (\w+), from [^\n]*\n(?:[^\n]*\n)*?\s*Duration: [^\n]*?start: (-?\d+(?:\.\d+)?)/m.exec(stderr)
  if (!match) return undefined
  const epochS = Number(match[2])
  if (!(epochS > 1e9)) return undefined // not an epoch time: the device's own clock
  return { epochS, source: format === 'alsa' || format === 'pulse' ? 'ffmpeg-input-start' : 'ffmpeg-wallclock' }
}

/** The last line of ffmpeg's log that says what went wrong. */
export function ffmpegErrorLine(stderr: string): string {
  const lines = stderr.split(/[\r\n]+/).map((line) => line.trim()).filter(Boolean)
  const noise = /^(Press \[q\]|Exiting normally|Guessed Channel|Stream mapping|Stream #|Input #|Output #|Duration:|Metadata:|[A-Z]+\s+:|size=|video:|Conversion failed)/
  return lines.filter((line) => !noise.test(line)).at(-1) ?? lines.at(-1) ?? 'no message'
}

export interface WavInfo {
  dataOffset: number; dataBytes: number; channels: number; sampleRate: number; bitsPerSample: number
  finalized: boolean // false when ffmpeg never wrote the sizes back (killed, power cut)
  junkOffset: number | null // ffmpeg's -rf64 auto reserves a JUNK chunk that becomes ds64 past 4 GiB
}

const UNSET = 0xffffffff

/** Reads a RIFF or RF64 header from the first bytes of a WAV file of `fileBytes` bytes. */
export function parseWavHeader(header: Buffer, fileBytes: number): WavInfo {
  const id = header.toString('latin1', 0, 4)
  if (header.length < 12 || (id !== 'RIFF' && id !== 'RF64') || header.toString('latin1', 8, 12) !== 'WAVE') throw new Error('not a WAV file')
  let offset = 12
  let ds64: { riffBytes: number; dataBytes: number } | undefined
  let junkOffset: number | null = null
  let format: Pick<WavInfo, 'channels' | 'sampleRate' | 'bitsPerSample'> | undefined
  while (offset + 8 <= header.length) {
    const chunk = header.toString('latin1', offset, offset + 4)
    const size = header.readUInt32LE(offset + 4)
    if (chunk === 'ds64') ds64 = { riffBytes: Number(header.readBigUInt64LE(offset + 8)), dataBytes: Number(header.readBigUInt64LE(offset + 16)) }
    if (chunk === 'JUNK' && size >= 28) junkOffset = offset
    if (chunk === 'fmt ') format = {
      channels: header.readUInt16LE(offset + 10), sampleRate: header.readUInt32LE(offset + 12), bitsPerSample: header.readUInt16LE(offset + 22),
    }
    if (chunk === 'data') {
      if (!format) throw new Error('WAV data before its fmt chunk')
      const dataOffset = offset + 8
      const riffBytes = id === 'RF64' ? ds64?.riffBytes : header.readUInt32LE(4)
      const dataBytes = size === UNSET && id === 'RF64' ? ds64?.dataBytes : size
      const finalized = riffBytes !== undefined && dataBytes !== undefined && riffBytes !== UNSET && dataBytes !== UNSET &&
        riffBytes + 8 <= fileBytes && dataOffset + dataBytes <= fileBytes
      return { ...format, dataOffset, dataBytes: finalized ? dataBytes! : fileBytes - dataOffset, finalized, junkOffset }
    }
    offset += 8 + size + (size % 2)
  }
  throw new Error('no data chunk in the first bytes of the WAV')
}

export interface WavRepair { kind: 'RIFF' | 'RF64'; dataBytes: number; patches: { offset: number; bytes: Buffer }[] }

/**
 * The header writes that give an unfinalized WAV the sizes its file holds: RIFF when they fit in
 * 32 bits, else RF64 in the JUNK chunk ffmpeg reserved for it. A trailing partial sample frame is
 * left outside the data chunk. null: nothing to repair.
 */
export function wavRepair(header: Buffer, fileBytes: number): WavRepair | null {
  const info = parseWavHeader(header, fileBytes)
  if (info.finalized) return null
  const frameBytes = info.channels * (info.bitsPerSample / 8)
  const dataBytes = Math.floor((fileBytes - info.dataOffset) / frameBytes) * frameBytes
  const riffBytes = info.dataOffset + dataBytes - 8
  const u32 = (n: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b }
  if (riffBytes < UNSET) {
    return { kind: 'RIFF', dataBytes, patches: [
      { offset: 0, bytes: Buffer.from('RIFF') }, { offset: 4, bytes: u32(riffBytes) }, { offset: info.dataOffset - 4, bytes: u32(dataBytes) },
    ] }
  }
  if (info.junkOffset === null) throw new Error('the WAV is past 4 GiB and has no JUNK chunk to hold RF64 sizes')
  const ds64 = Buffer.alloc(36)
  ds64.write('ds64', 0, 'latin1')
  ds64.writeUInt32LE(header.readUInt32LE(info.junkOffset + 4), 4) // the chunk keeps its size
  ds64.writeBigUInt64LE(BigInt(riffBytes), 8)
  ds64.writeBigUInt64LE(BigInt(dataBytes), 16)
  ds64.writeBigUInt64LE(BigInt(dataBytes / frameBytes), 24)
  ds64.writeUInt32LE(0, 32) // no table
  return { kind: 'RF64', dataBytes, patches: [
    { offset: 0, bytes: Buffer.from('RF64') }, { offset: 4, bytes: u32(UNSET) }, { offset: info.junkOffset, bytes: ds64 },
    { offset: info.dataOffset - 4, bytes: u32(UNSET) },
  ] }
}

// ── The video ────────────────────────────────────────────────────────────────────────────────

/**
 * An mp4 is finished when a `moov` box lies wholly inside it. While OpenCV writes, the file is
 * ftyp, free, mdat (size 0: to end of file) and no moov. `readAt(offset, 16)` returns the bytes there.
 */
export function hasMoov(fileBytes: number, readAt: (offset: number, length: number) => Buffer): boolean {
  let offset = 0
  while (offset + 8 <= fileBytes) {
    const head = readAt(offset, 16)
    if (head.length < 8) return false
    let size = head.readUInt32BE(0)
    const type = head.toString('latin1', 4, 8)
    if (size === 1) {
      if (head.length < 16) return false
      size = Number(head.readBigUInt64BE(8))
    } else if (size === 0) {
      size = fileBytes - offset
    }
    if (size < 8) return false
    if (type === 'moov') return offset + size <= fileBytes
    offset += size
  }
  return false
}

export function isFinalizedMp4(file: string): boolean {
  const fd = fs.openSync(file, 'r')
  try {
    const fileBytes = fs.fstatSync(fd).size
    return hasMoov(fileBytes, (offset, length) => {
      const buffer = Buffer.alloc(length)
      return buffer.subarray(0, fs.readSync(fd, buffer, 0, length, offset))
    })
  } finally {
    fs.closeSync(fd)
  }
}

// ── Sync arithmetic and the mux command ──────────────────────────────────────────────────────

export interface MuxInput {
  audioFile: string
  videoFile: string
  muxedFile: string
  sampleRate: number
  offsetS: number // audioStartEpochS − videoStartEpochS
  videoDurationS: number | null // null while the video is unfinished: the audio is not cut
}

export interface MuxPlan { args: string[]; delaySamples: number; trimSamples: number; lengthSamples: number | null; filter: string }

/**
 * Late audio gets N samples of silence in front (adelay), early audio loses its first N samples
 * (atrim): both exact to the sample and independent of players' edit-list support, unlike
 * -itsoffset. The audio is then padded or cut to the video's length, unlike -shortest, which
 * overshoots with a copied video stream.
 */
export function muxPlan(m: MuxInput): MuxPlan {
  const shiftSamples = Math.round(m.offsetS * m.sampleRate)
  const delaySamples = Math.max(0, shiftSamples)
  const trimSamples = Math.max(0, -shiftSamples)
  const lengthSamples = m.videoDurationS == null ? null : Math.round(m.videoDurationS * m.sampleRate)
  const steps = [
    ...(delaySamples ? [`adelay=delays=${delaySamples}S:all=1`] : []),
    ...(trimSamples ? [`atrim=start_sample=${trimSamples}`, 'asetpts=PTS-STARTPTS'] : []),
    ...(lengthSamples != null ? [`apad=whole_len=${lengthSamples}`, `atrim=end_sample=${lengthSamples}`] : []),
  ]
  const filter = steps.length ? steps.join(',') : 'anull'
  const args = [
    '-hide_banner', '-n', // -n: never overwrite an existing output
    '-i', m.videoFile, '-i', m.audioFile,
    '-map', '0:v:0', '-map', '1:a:0',
    '-c:v', 'copy', // the recording itself is never re-encoded
    '-filter:a', filter, '-c:a', 'aac', '-b:a', '192k',
    m.muxedFile,
  ]
  return { args, delaySamples, trimSamples, lengthSamples, filter }
}

const POSIX_SAFE = /^[A-Za-z0-9_\/.,:@%+-][A-Za-z0-9_\/.,:@%+=-]*$/ // '=' first is a zsh expansion

/** Quoting that bash, zsh and sh all read back as the same word, whatever the bytes. */
export function quotePosix(arg: string): string {
  if (POSIX_SAFE.test(arg)) return arg
  return `'${arg.replace(/'/g, `'\\''`)}'`
}

/** PowerShell: single quotes, each of its four single-quote characters doubled. */
export function quotePowerShellArg(arg: string): string {
  if (/^[A-Za-z0-9_\/.,:\\-]+$/.test(arg) && !arg.startsWith('-')) return arg
  return `'${arg.replace(/['\u2018\u2019\u201a\u201b]/g, (q) => q + q)}'`
}

export function formatCommand(file: string, args: string[], platform: Platform): string {
  if (platform === 'win32') return ['&', quotePowerShellArg(file), ...args.map((a) => (/^-[\w:]+$/.test(a) ? a : quotePowerShellArg(a)))].join(' ')
  return [file, ...args].map(quotePosix).join(' ')
}

export function describeOffset(offsetS: number): string {
  const ms = Math.abs(offsetS * 1000).toFixed(1)
  if (Math.abs(offsetS) < 0.0005) return 'audio and video started together (offset 0.0 ms)'
  return offsetS > 0
    ? `audio started ${ms} ms after the video's first frame: ${ms} ms of silence go before it`
    : `audio started ${ms} ms before the video's first frame: its first ${ms} ms are cut`
}

export function installHint(platform: Platform): string {
  if (platform === 'darwin') return 'brew install ffmpeg'
  if (platform === 'win32') return 'winget install ffmpeg'
  return 'sudo apt-get install ffmpeg (Debian/Ubuntu) or your distribution\'s ffmpeg package'
}

// ── The run ──────────────────────────────────────────────────────────────────────────────────

const say = (line: string) => {
  try { process.stderr.write(line + '\n') } catch { /* the terminal is gone (SIGHUP): the files still get written */ }
}

function packageVersion(): string {
  for (const rel of ['./package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8'))
      if (pkg.name === 'record-audio') return pkg.version
    } catch { /* try the next place */ }
  }
  return 'unknown'
}

/** ffmpeg and ffprobe as runnable paths; ffprobe from the same folder when ffmpeg was given by path. */
async function findTools(ffmpegSetting: string): Promise<{ ffmpeg: string; ffprobe: string | null }> {
  const ffmpeg = /[\\/]/.test(ffmpegSetting)
    ? (fs.existsSync(ffmpegSetting) ? path.resolve(ffmpegSetting) : null)
    : await which(ffmpegSetting, { nothrow: true })
  if (!ffmpeg) throw new ToolError(`ffmpeg not found (tried ${JSON.stringify(ffmpegSetting)}): install it with ${installHint(process.platform)}, or pass --ffmpeg /path/to/ffmpeg`)
  const exe = process.platform === 'win32' ? '.exe' : ''
  const sibling = path.join(path.dirname(ffmpeg), 'ffprobe' + exe)
  const ffprobe = fs.existsSync(sibling) ? sibling : await which('ffprobe', { nothrow: true })
  return { ffmpeg, ffprobe }
}

class ToolError extends Error {}

interface VideoFacts { file: string; startEpochS: number; finalized: boolean; durationS: number | null }

async function videoFacts(file: string, ffprobe: string | null): Promise<VideoFacts> {
  const startEpochS = ulidTimeMs(path.basename(file)) / 1000
  const finalized = isFinalizedMp4(file)
  let durationS: number | null = null
  if (finalized && ffprobe) {
    const probe = await $({ nothrow: true, quiet: true })`${ffprobe} -v error -select_streams v:0 -show_entries stream=duration -of csv=p=0 ${file}`
    const value = Number(probe.stdout.trim())
    if (probe.exitCode === 0 && value > 0) durationS = value
  }
  return { file, startEpochS, finalized, durationS }
}

/** --video, else the newest recording in the feed folder; null when there is none (yet). */
function findVideo(videoFile: string | null, feedDir: string): string | null {
  if (videoFile) return videoFile
  let names: string[]
  try { names = fs.readdirSync(feedDir) } catch { return null }
  const newest = newestRecording(names)
  return newest ? path.join(feedDir, newest) : null
}

function checkVideoFile(videoFile: string | null): void {
  if (videoFile == null) return
  if (!fs.existsSync(videoFile)) throw new UsageError(`--video ${videoFile} does not exist: give the path of the TracktorLive recording`)
  if (!RECORDING_NAME.test(path.basename(videoFile)))
    throw new UsageError(`--video ${videoFile} is not named <ULID>.mp4, so its start time is unknown: give TracktorLive's original file`)
}

function checkMuxedFile(muxedFile: string | null): void {
  if (muxedFile != null && fs.existsSync(muxedFile)) throw new UsageError(`${muxedFile} exists and is never overwritten: choose another --muxed-out`)
}

function checkPaths(s: Settings): { audioFile: string; syncFile: string } {
  const explicit = s.audioFile != null
  const audioFile = explicit ? s.audioFile! : freeName(`${s.feedId}-audio.wav`, (f) => fs.existsSync(f) || fs.existsSync(syncFileFor(f)))
  if (!explicit && audioFile !== `${s.feedId}-audio.wav`) {
    say(`  ${s.feedId}-audio.wav exists (an earlier recording, kept): recording to ${audioFile} instead.`)
    const earlier = readWavInfo(`${s.feedId}-audio.wav`)
    if (earlier && !earlier.finalized) say(`⚠ Its header was never finalized: record-audio repair ${quotePosix(`${s.feedId}-audio.wav`)}`)
  }
  if (explicit && fs.existsSync(audioFile)) throw new UsageError(`${audioFile} exists and is never overwritten: choose another --out, or move it away`)
  for (const file of [audioFile, s.syncFile].filter((f): f is string => f != null))
    if (!fs.existsSync(path.dirname(path.resolve(file)))) throw new UsageError(`folder ${path.dirname(file)} does not exist: create it, or write ${path.basename(file)} elsewhere`)
  const syncFile = s.syncFile ?? syncFileFor(audioFile)
  if (fs.existsSync(syncFile)) throw new UsageError(`${syncFile} exists and is never overwritten: choose another --sync-out, or move it away`)
  checkVideoFile(s.videoFile)
  checkMuxedFile(s.muxedFile)
  return { audioFile, syncFile }
}

/**
 * On Linux, setpriv's parent-death signal makes the kernel stop ffmpeg if this process dies
 * without stopping it, even by SIGKILL: it must not record on until the disk is full. The signal
 * arrives once per ffmpeg thread, so ffmpeg aborts without rewriting the WAV's sizes; the
 * samples, flushed packet by packet, are all on disk.
 */
async function deathSignalLauncher(): Promise<string[]> {
  if (process.platform !== 'linux') return []
  const setpriv = await which('setpriv', { nothrow: true })
  return setpriv ? [setpriv, '--pdeathsig', 'INT', '--'] : []
}

async function record(s: Settings): Promise<number> {
  const { ffmpeg, ffprobe } = await findTools(s.ffmpeg)
  const { audioFile, syncFile } = checkPaths(s)
  const launcher = await deathSignalLauncher()

  // ffmpeg runs in its own process group, so a terminal's ctrl-c reaches only this process, which
  // then stops ffmpeg exactly once, with `q` on its stdin (a second signal would abort its writes).
  const spawnEpochS = Date.now() / 1000
  const capture = $({ nothrow: true, quiet: true, detached: process.platform !== 'win32', stdio: ['pipe', 'ignore', 'pipe'] })`exec ${launcher} ${ffmpeg} ${captureArgs(s, audioFile)}`
  let stderr = ''
  capture.stderr.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString('utf8')).slice(-65536) })
  capture.stdin.on('error', () => { /* ffmpeg already gone: its exit is handled below */ })
  const channelsText = s.channels === 1 ? 'mono' : s.channels === 2 ? 'stereo' : `${s.channels} channels`
  say(`● Recording ${s.format} device ${JSON.stringify(s.device)} (${s.sampleRate} Hz, ${channelsText}) to ${audioFile}. Press ctrl-c to stop.`)

  let stopRequestedEpochS: number | null = null
  let signals = 0
  let escalation: NodeJS.Timeout | undefined
  const signalFfmpeg = (signal: NodeJS.Signals) => {
    const child = capture.child
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null)
      try { process.kill(child.pid, signal) } catch { /* exited meanwhile */ }
  }
  // Samples reach the WAV one device latency after they were captured: wait until every sample up
  // to the stop request is on disk (bounded), then send q, the stop that finalizes the WAV.
  const drainThenStop = async (untilEpochS: number) => {
    const start = parseInputStart(stderr, s.format)
    const dataOffset = readWavInfo(audioFile)?.dataOffset
    if (start && dataOffset !== undefined) {
      const targetBytes = dataOffset + (untilEpochS - start.epochS) * s.sampleRate * s.channels * 2
      const deadline = Date.now() + MAX_DRAIN_MS
      while (signals === 1 && Date.now() < deadline && fileBytes(audioFile) < targetBytes) await sleep(10)
    }
    if (signals > 1) return
    capture.stdin.end('q')
    escalation = setTimeout(() => signalFfmpeg('SIGINT'), 3000) // q not read: one SIGINT still finalizes
  }
  const onSignal = () => {
    signals++
    if (signals === 1) {
      stopRequestedEpochS = Date.now() / 1000
      say('■ Stopping: ffmpeg is writing the last samples and finishing the WAV…')
      void drainThenStop(stopRequestedEpochS)
    } else if (signals === 2) {
      say('■ Stopping now (ctrl-c again kills ffmpeg; the samples on disk are kept, but the WAV header may be left unfinished).')
      signalFfmpeg('SIGINT')
    } else {
      signalFfmpeg('SIGKILL')
    }
  }
  const stopSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
  for (const signal of stopSignals) process.on(signal, onSignal)
  const killOnExit = () => signalFfmpeg('SIGINT') // a crash of this script must not leave ffmpeg recording
  process.on('exit', killOnExit)

  const result = await capture
  clearTimeout(escalation)
  for (const signal of stopSignals) process.off(signal, onSignal)
  process.off('exit', killOnExit)

  if (!fs.existsSync(audioFile)) {
    say(`✖ ffmpeg could not record from ${s.format} device ${JSON.stringify(s.device)}: ${ffmpegErrorLine(stderr)}`)
    say(`  List the devices with: ${listDevicesHint(s.format, ffmpeg)}`)
    return 1
  }
  let failed = stopRequestedEpochS === null
  if (failed) {
    const why = result.signal ? `ffmpeg was killed (${result.signal})` : `ffmpeg stopped recording on its own (exit ${result.exitCode}): ${ffmpegErrorLine(stderr)}`
    say(`✖ ${why}. The audio recorded so far is kept.`)
  }

  const audioStart = parseInputStart(stderr, s.format) ?? { epochS: spawnEpochS, source: 'spawn-time' as const }
  const wav = readWavInfo(audioFile)
  const audio: AudioFacts = {
    file: path.resolve(audioFile), startEpochS: audioStart.epochS, startSource: audioStart.source,
    sampleRate: s.sampleRate, channels: s.channels,
    durationS: wav ? wav.dataBytes / (wav.channels * (wav.bitsPerSample / 8) * wav.sampleRate) : null,
  }
  say(`✔ Audio: ${audioFile}` + (audio.durationS == null ? '' : ` (${audio.durationS.toFixed(2)} s)`) +
    `, first sample at ${new Date(audio.startEpochS * 1000).toISOString()} (${audio.startSource})`)
  if (wav && !wav.finalized) say(`⚠ The WAV header was not finalized, so some readers misreport its length: record-audio repair ${quotePosix(audioFile)}`)
  if (audio.startSource === 'spawn-time') say('⚠ ffmpeg printed no start time: the audio start is the time ffmpeg was started, typically 80–120 ms early.')

  const sync = await syncToVideo(audio, {
    feedDir: path.resolve(s.feedId), videoFile: s.videoFile, muxedFile: s.muxedFile, muxedSuffix: s.muxedSuffix, ffmpeg, ffprobe,
  })
  try {
    fs.writeFileSync(syncFile, JSON.stringify(sync, null, 2) + '\n', { flag: 'wx' })
    say(`  Timing: ${syncFile}`)
  } catch (error) {
    // A full disk must not cost the timing: it goes to the terminal instead, and the part-written
    // file (created just now by 'wx', so ours) does not pretend to hold it.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') fs.rmSync(syncFile, { force: true })
    say(`✖ Could not write ${syncFile} (${(error as NodeJS.ErrnoException).code}); its content:\n${JSON.stringify(sync)}`)
    failed = true
  }
  if (sync.muxCommand) {
    say('Mux with:')
    process.stdout.write(sync.muxCommand + '\n')
  } else {
    say(`  Once the video exists: record-audio mux ${quotePosix(syncFile)}`)
  }
  return failed ? 1 : 0
}

const MAX_DRAIN_MS = 1500 // longer than any sane device latency; a stuck device must not hold the stop

function fileBytes(file: string): number {
  try { return fs.statSync(file).size } catch { return 0 }
}

function readWavInfo(file: string): WavInfo | null {
  try {
    const fd = fs.openSync(file, 'r')
    try {
      const header = Buffer.alloc(4096)
      const read = fs.readSync(fd, header, 0, header.length, 0)
      return parseWavHeader(header.subarray(0, read), fs.fstatSync(fd).size)
    } finally { fs.closeSync(fd) }
  } catch {
    return null
  }
}

/** What the sync file says of the audio; all that the mux needs, so `mux` can redo it later. */
interface AudioFacts {
  file: string; startEpochS: number; startSource: AudioStart['source']; sampleRate: number; channels: number; durationS: number | null
}

interface VideoChoice { feedDir: string; videoFile: string | null; muxedFile: string | null; muxedSuffix: string; ffmpeg: string; ffprobe: string | null }

/** Finds the video, measures the offset, builds the command, says what it found; returns the sync record. */
async function syncToVideo(audio: AudioFacts, v: VideoChoice): Promise<Record<string, unknown>> {
  const record: Record<string, unknown> = {
    tool: `record-audio ${packageVersion()}`,
    feedDir: v.feedDir,
    audioFile: audio.file,
    audioStartEpochS: audio.startEpochS,
    audioStartSource: audio.startSource,
    audioSampleRate: audio.sampleRate,
    audioChannels: audio.channels,
    audioDurationS: audio.durationS,
    videoFile: null, videoStartEpochS: null, videoStartSource: null, videoFinalized: null, videoDurationS: null,
    offsetS: null, delaySamples: null, trimSamples: null, muxedFile: null, muxArgs: null, muxCommand: null,
  }
  const videoFile = findVideo(v.videoFile, v.feedDir)
  if (!videoFile) {
    say(`⚠ No TracktorLive recording (<ULID>.mp4) in ${v.feedDir}${path.sep}: the WAV is kept.`)
    return record
  }
  const video = await videoFacts(videoFile, v.ffprobe)
  const offsetS = audio.startEpochS - video.startEpochS
  const muxedFile = path.resolve(v.muxedFile ?? freeName(muxedFileFor(videoFile, v.muxedSuffix), fs.existsSync))
  // Absolute paths: the command must work when pasted into a terminal in another folder.
  const plan = muxPlan({
    audioFile: audio.file, videoFile: path.resolve(videoFile), muxedFile,
    sampleRate: audio.sampleRate, offsetS, videoDurationS: video.durationS,
  })
  const muxCommand = formatCommand(v.ffmpeg, plan.args, process.platform)
  Object.assign(record, {
    videoFile: path.resolve(videoFile), videoStartEpochS: video.startEpochS, videoStartSource: 'ulid',
    videoFinalized: video.finalized, videoDurationS: video.durationS,
    offsetS, delaySamples: plan.delaySamples, trimSamples: plan.trimSamples,
    muxedFile, muxArgs: [v.ffmpeg, ...plan.args], muxCommand,
  })

  say(`✔ Video: ${videoFile}` + (video.finalized ? ` (finalized${video.durationS == null ? '' : `, ${video.durationS.toFixed(2)} s`})` : ' (not finalized yet)') +
    `, first frame at ${new Date(video.startEpochS * 1000).toISOString()} (from the ULID in its name; the frame follows within a camera frame or so)`)
  say(`  Offset: ${describeOffset(offsetS)}.`)
  const audioEndEpochS = audio.startEpochS + (audio.durationS ?? 0)
  if (video.durationS != null && (audioEndEpochS < video.startEpochS || audio.startEpochS > video.startEpochS + video.durationS))
    say('⚠ This video and the audio do not overlap in time: check that it is the right recording (--video).')
  if (!video.finalized)
    say("⚠ The video is not finalized yet (TracktorLive is still writing it): run the command after the recorder has stopped. The audio is not cut to the video's length.")
  return record
}

/** `record-audio mux SYNC_FILE`: the offset and the command again, from the sync file alone. */
async function muxLater(m: MuxLater): Promise<number> {
  let sync: Record<string, any>
  try {
    sync = JSON.parse(fs.readFileSync(m.syncFile, 'utf8'))
  } catch (error) {
    throw new UsageError(`cannot read ${m.syncFile} (${(error as NodeJS.ErrnoException).code ?? 'not JSON'}): give the -sync.json file a recording wrote`)
  }
  if (typeof sync.audioFile !== 'string' || typeof sync.audioStartEpochS !== 'number' || typeof sync.audioSampleRate !== 'number')
    throw new UsageError(`${m.syncFile} is not a record-audio sync file: give the -sync.json file a recording wrote`)
  if (!fs.existsSync(sync.audioFile)) throw new UsageError(`the recording ${sync.audioFile} is not there any more: put it back, or edit audioFile in ${m.syncFile}`)
  checkVideoFile(m.videoFile)
  checkMuxedFile(m.muxedFile)
  const { ffmpeg, ffprobe } = await findTools(m.ffmpeg)
  if (readWavInfo(sync.audioFile)?.finalized === false)
    say(`⚠ ${sync.audioFile} has an unfinished header (ffmpeg reads it, other readers may not): record-audio repair ${quotePosix(sync.audioFile)}`)
  const audio: AudioFacts = {
    file: sync.audioFile, startEpochS: sync.audioStartEpochS, startSource: sync.audioStartSource,
    sampleRate: sync.audioSampleRate, channels: sync.audioChannels, durationS: sync.audioDurationS ?? null,
  }
  const feedDir = typeof sync.feedDir === 'string' ? sync.feedDir : path.dirname(sync.audioFile)
  const again = await syncToVideo(audio, { feedDir, videoFile: m.videoFile, muxedFile: m.muxedFile, muxedSuffix: m.muxedSuffix, ffmpeg, ffprobe })
  if (!again.muxCommand) return 1
  say('Mux with:')
  process.stdout.write(again.muxCommand + '\n')
  return 0
}

/** `record-audio repair FILE.wav`: only the size fields of the header are written. */
function repairWav(file: string): number {
  let fd: number
  try { fd = fs.openSync(file, 'r+') } catch (error) {
    throw new UsageError(`cannot open ${file} (${(error as NodeJS.ErrnoException).code}): give the path of the WAV to repair`)
  }
  try {
    const header = Buffer.alloc(4096)
    const read = fs.readSync(fd, header, 0, header.length, 0)
    const fileBytes = fs.fstatSync(fd).size
    let repair: WavRepair | null
    try { repair = wavRepair(header.subarray(0, read), fileBytes) } catch (error) {
      throw new UsageError(`${file}: ${(error as Error).message}; it was left as it is`)
    }
    if (!repair) return (say(`✔ ${file} is already finalized: nothing to repair.`), 0)
    for (const patch of repair.patches) fs.writeSync(fd, patch.bytes, 0, patch.bytes.length, patch.offset)
    fs.fsyncSync(fd)
    const info = parseWavHeader(header.subarray(0, read), fileBytes)
    const seconds = repair.dataBytes / (info.channels * (info.bitsPerSample / 8) * info.sampleRate)
    say(`✔ Repaired ${file}: ${repair.kind} header for ${seconds.toFixed(3)} s of audio (the samples were not touched).`)
    return 0
  } finally {
    fs.closeSync(fd)
  }
}

export async function main(argv: string[]): Promise<number> {
  // A closed terminal (SIGHUP) turns writes into EIO errors: the stop must go on regardless.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {})
  let command: Command
  try {
    command = parseCommand(argv, process.platform)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    say(`record-audio: ${error.message}`)
    return 2
  }
  if (command.kind === 'help') return (process.stdout.write(helpText(process.platform) + '\n'), 0)
  if (command.kind === 'version') return (process.stdout.write(packageVersion() + '\n'), 0)
  try {
    if (command.kind === 'repair') return repairWav(command.file)
    return command.kind === 'mux' ? await muxLater(command.mux) : await record(command.settings)
  } catch (error) {
    if (error instanceof UsageError) return (say(`record-audio: ${error.message}`), 2)
    if (error instanceof ToolError) return (say(`record-audio: ${error.message}`), 1)
    throw error
  }
}

function invokedDirectly(): boolean {
  try {
    return fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (invokedDirectly()) process.exitCode = await main(process.argv.slice(2))
