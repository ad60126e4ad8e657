// The pure parts: flags, names, times, WAV and mp4 headers, the mux arithmetic, quoting.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import {
  syncRangeProblem,
  muxLauncher,
  openRegular,
  readRegular,
  isRegularFile,
  parseCommand,
  helpText,
  FILE_DEFAULTS,
  UsageError,
  ulidTimeMs,
  newestRecording,
  freeName,
  syncFileFor,
  muxedFileFor,
  captureArgs,
  parseInputStart,
  ffmpegErrorLine,
  parseWavHeader,
  hasMoov,
  isFinalizedMp4,
  muxPlan,
  quotePosix,
  quotePowerShellArg,
  formatCommand,
  describeOffset,
  defaultFormat,
  nodeIsTooOld,
  stampBuild,
  checkBuild,
  sha256,
  OLDEST_NODE,
  didYouMean,
  editDistance,
} from '../dist/record-audio.mjs'
import { ulidAt, tempDir, run, requireBinary, readWav } from './helpers.mjs'

const settings = (argv, platform = 'linux', defaults) => parseCommand(argv, platform, defaults).settings
const usageError = (argv, pattern, platform = 'linux') =>
  assert.throws(
    () => parseCommand(argv, platform),
    (e) => e instanceof UsageError && pattern.test(e.message) && !e.message.includes('\n'),
  )

test('flags: defaults come from the settings block', () => {
  const { inForce, ...s } = settings(['feed'])
  // What the sync record keeps: each setting by its flag, the settings block's but for the feed id given.
  assert.deepEqual(inForce.fromFlags, ['feed-id'])
  assert.equal(inForce.values['feed-id'], 'feed')
  assert.equal(inForce.values['muxed-suffix'], FILE_DEFAULTS.muxedSuffix)
  assert.equal(inForce.values.rate, FILE_DEFAULTS.sampleRate)
  assert.equal(Object.keys(inForce.values).length, Object.keys(FILE_DEFAULTS).length)
  assert.deepEqual(s, {
    feedId: 'feed',
    format: 'alsa',
    inputs: [{ device: 'default', sampleRate: 48000, channels: 1 }],
    audioFile: null,
    syncFile: null,
    videoFile: null,
    muxedFile: null,
    muxedSuffix: '-with-audio.mp4',
    ffmpeg: 'ffmpeg',
    timesyncFile: null,
    videoStartEpochS: null,
    clockOffsetS: 0,
    cameraLatencyS: null, // the kept calibration's, else unmeasured
    calibration: true,
    driftFix: true,
    events: false,
    allVideos: false,
    mux: false,
    waitS: 600,
    json: false,
    plotFile: null,
    verbose: false,
  })
})

test('flags: every flag overrides its constant', () => {
  const s = settings([
    '--feed-id',
    'f',
    '--format',
    'pulse',
    '--device',
    'mic.monitor',
    '--rate',
    '96000',
    '--channels=2',
    '--out',
    'a.wav',
    '--sync-out',
    's.json',
    '--video',
    'v/01ARYZ6S41TSV4RRFFQ69G5FAV.mp4',
    '--muxed-out',
    'm.mp4',
    '--muxed-suffix',
    '_av.mp4',
    '--ffmpeg',
    '/opt/ff/ffmpeg',
    '--timesync',
    'f-timesyncUTC.parquet',
    '--video-start',
    '2026-11-27T22:24:51.770Z',
    '--clock-offset=-0.25',
    '--no-drift-fix',
    '--events',
    '--mux',
    '--wait',
    '30',
    '--json',
    '--plot',
    'p.png',
    '--camera-latency=0.135',
    '--no-calibration',
    '--verbose',
  ])
  const { inForce } = s
  delete s.inForce
  // Every setting given as a flag is kept as given (the rest of the command line is not a setting).
  assert.deepEqual(inForce.fromFlags.length, Object.keys(FILE_DEFAULTS).length - 1, 'all but --all-videos')
  assert.ok(!inForce.fromFlags.includes('all-videos'))
  assert.equal(inForce.values['muxed-suffix'], '_av.mp4')
  assert.equal(inForce.values['clock-offset'], '-0.25')
  assert.equal(inForce.values['drift-fix'], false)
  assert.equal(inForce.values.events, true)
  assert.deepEqual(s, {
    feedId: 'f',
    format: 'pulse',
    inputs: [{ device: 'mic.monitor', sampleRate: 96000, channels: 2 }],
    audioFile: 'a.wav',
    syncFile: 's.json',
    videoFile: 'v/01ARYZ6S41TSV4RRFFQ69G5FAV.mp4',
    muxedFile: 'm.mp4',
    muxedSuffix: '_av.mp4',
    ffmpeg: '/opt/ff/ffmpeg',
    timesyncFile: 'f-timesyncUTC.parquet',
    videoStartEpochS: Date.parse('2026-11-27T22:24:51.770Z') / 1000,
    clockOffsetS: -0.25,
    cameraLatencyS: 0.135,
    calibration: false,
    driftFix: false,
    events: true,
    allVideos: false, // it excludes --video and --muxed-out: its own test below
    mux: true,
    waitS: 30,
    json: true,
    plotFile: 'p.png',
    verbose: true,
  })
})

test('flags: an edited settings block is the default, and a flag still wins over it', () => {
  const edited = { ...FILE_DEFAULTS, feedId: 'lab', sampleRate: 44100, format: 'pulse' }
  assert.equal(settings([], 'linux', edited).feedId, 'lab')
  assert.equal(settings([], 'linux', edited).inputs[0].sampleRate, 44100)
  assert.equal(settings(['--rate', '8000'], 'linux', edited).inputs[0].sampleRate, 8000)
  const twoMics = { ...FILE_DEFAULTS, device: ['hw:1', 'hw:2'], sampleRate: [192000, 48000] }
  assert.deepEqual(settings([], 'linux', twoMics).inputs, [
    { device: 'hw:1', sampleRate: 192000, channels: 1 },
    { device: 'hw:2', sampleRate: 48000, channels: 1 },
  ])
  assert.equal(settings(['other'], 'linux', edited).feedId, 'other')
})

test('flags: per-platform defaults (macOS and Windows faked: only the platform name is passed)', () => {
  assert.equal(defaultFormat('linux'), 'alsa')
  const mac = settings(['feed'], 'darwin')
  assert.equal(mac.format, 'avfoundation')
  assert.equal(mac.inputs[0].device, ':0')
  usageError(['feed'], /dshow needs --device "audio=<name>": list the names with record-audio --list-devices$/, 'win32')
  assert.equal(settings(['feed', '--device', 'audio=Microphone (USB)'], 'win32').format, 'dshow')
  usageError(['feed', '--format', 'avfoundation'], /does not exist on linux: use alsa/)
})

test('flags: bad input is one line naming the problem and the fix', () => {
  usageError(['feed', '--rate', 'abc'], /--rate "abc" is not a whole number from 1000 to 768000/)
  usageError(['feed', '--rate', '44100.5'], /--rate/)
  usageError(['feed', '--channels', '0'], /--channels "0" is not a whole number from 1 to 64/)
  usageError(['feed', '--format', 'bogus'], /--format "bogus" is unknown: use one of alsa, pulse, avfoundation, dshow/)
  usageError(['feed', '--bogus'], /unknown flag --bogus/)
  usageError(['feed', '--bogus=1'], /unknown flag --bogus: see/)
  usageError([''], /is not a folder name/)
  usageError(['a/b'], /"a\/b" is not a folder name/)
  usageError(['a\\b'], /is not a folder name/)
  usageError(['..'], /is not a folder name/)
  usageError(['a', 'b'], /too many arguments/)
  usageError(['a', '--feed-id', 'b'], /given twice/)
  usageError(['feed', '--rate', '8000', '--rate', '16000'], /--rate is given 2 times for 1 devices: give it once/)
  usageError(['feed', '--video', 'a.mp4', '--video', 'b.mp4'], /--video is given more than once/)
  usageError(['feed', '--device', 'a', '--device', 'a'], /--device "a" is given twice/)
  usageError(['feed', '--device', 'a', '--device', ''], /--device needs a value/)
  usageError(['feed', '--device'], /--device needs a value/)
  usageError(['feed', '--out', 'x.mp3'], /must end in \.wav/)
  usageError(['feed', '--video', 'x.avi'], /is not an \.mp4/)
  usageError(['feed', '--muxed-suffix', 'x/y.mp4'], /--muxed-suffix/)
})

test('flags: --device once per microphone; --rate and --channels once for all, or once each in the same order', () => {
  assert.deepEqual(settings(['feed', '--device', 'hw:1', '--device', 'hw:2', '--rate', '96000']).inputs, [
    { device: 'hw:1', sampleRate: 96000, channels: 1 },
    { device: 'hw:2', sampleRate: 96000, channels: 1 },
  ])
  assert.deepEqual(
    settings([
      'feed',
      '--device=ultra',
      '--device=room',
      '--rate=250000',
      '--rate=48000',
      '--channels=1',
      '--channels=2',
    ]).inputs,
    [
      { device: 'ultra', sampleRate: 250000, channels: 1 },
      { device: 'room', sampleRate: 48000, channels: 2 },
    ],
  )
  usageError(
    ['feed', '--device', 'a', '--device', 'b', '--device', 'c', '--channels', '1', '--channels', '2'],
    /--channels is given 2 times for 3 devices/,
  )
})

test('flags: mux <sync.json> muxes (--print only prints); only the timing flags given now are passed on', () => {
  assert.deepEqual(parseCommand(['mux', 'a-audio-sync.json', '--video', 'f/01ARYZ6S41TSV4RRFFQ69G5FAV.mp4'], 'linux'), {
    kind: 'mux',
    mux: {
      syncFile: 'a-audio-sync.json',
      videoFile: 'f/01ARYZ6S41TSV4RRFFQ69G5FAV.mp4',
      muxedFile: null,
      muxedSuffix: '-with-audio.mp4',
      ffmpeg: 'ffmpeg',
      given: {},
      mux: true,
      waitS: 600,
      json: false,
      plotFile: null,
      verbose: false,
    },
  })
  assert.equal(parseCommand(['mux', 'a.json', '--print'], 'linux').mux.mux, false)
  assert.deepEqual(parseCommand(['mux', 'a.json', '--clock-offset=-0.25', '--no-drift-fix'], 'linux').mux.given, {
    clockOffsetS: -0.25,
    driftFix: false,
  })
  usageError(['mux', 'x.wav'], /mux takes the sync file \(\.json\)/)
  usageError(['mux', 'x.json', '--rate', '8000'], /--rate has no effect with mux/)
  usageError(['feed', '--print'], /--print goes with mux/)
})

test('flags: a subcommand without its file is a usage error; a feed of that name goes through --feed-id', () => {
  usageError(
    ['mux'],
    /^mux takes one file: record-audio mux <sync\.json> \(to record a feed named mux: --feed-id mux\)$/,
  )
  usageError(['repair'], /^repair takes one file: record-audio repair <file\.wav>/)
  usageError(['mux', 'a.json', 'b.json'], /mux takes one file/)
  assert.equal(settings(['--feed-id', 'mux']).feedId, 'mux')
  assert.equal(settings(['--feed-id', 'repair']).feedId, 'repair')
})

test('flags: feed ids stay as typed (007, 1e3), --no-feed-id means none, other --no-<flag> are refused in one line', () => {
  assert.equal(settings(['007']).feedId, '007')
  assert.equal(settings(['1e3']).feedId, '1e3')
  assert.equal(settings(['--feed-id', '007']).feedId, '007')
  assert.equal(settings(['--no-feed-id'], 'linux', { ...FILE_DEFAULTS, feedId: 'lab' }).feedId, null)
  usageError(['feed', '--no-sync-out'], /--no-sync-out is not a flag: leave --sync-out out/)
  usageError(['feed', '--no-device'], /--no-device is not a flag/)
  usageError(['feed', '--no-rate'], /--no-rate is not a flag/)
})

test('flags: --help lists every flag with its default; --version', () => {
  assert.deepEqual(parseCommand(['--help'], 'linux'), { kind: 'help' })
  assert.deepEqual(parseCommand(['-h'], 'linux'), { kind: 'help' })
  assert.deepEqual(parseCommand(['--version'], 'linux'), { kind: 'version' })
  const help = helpText('linux')
  for (const flag of [
    '--feed-id',
    '--format',
    '--device',
    '--rate',
    '--channels',
    '--out',
    '--sync-out',
    '--video',
    '--muxed-out',
    '--muxed-suffix',
    '--ffmpeg',
  ])
    assert.ok(help.includes(flag), flag)
  assert.match(help, /default: 48000/)
  assert.match(help, /default: -with-audio\.mp4/)
})

test('--help: no default reads "null", each default said once, the subcommands in the usage lines with what they do', () => {
  const help = helpText('linux')
  assert.doesNotMatch(help, /null|undefined/)
  assert.match(help, /--plot=….*\n\s+default: none\n/)
  const feedId = help.slice(help.indexOf('--feed-id'), help.indexOf('--format'))
  assert.equal(feedId.match(/none/g).length, 1, feedId)
  assert.match(help, /^ {7}record-audio mux <sync\.json> +mux a recording later/m)
  assert.match(help, /^ {7}record-audio repair <file\.wav> +write the sizes/m)
  assert.match(help, /--no-drift-fix +do not retime/)
  for (const line of help.split('\n')) assert.ok([...line].length <= 110, `fits a terminal: ${line}`)
})

test("--help: --video-start's default is what the run really uses: the tracking CSV, then timesync, then the ULID", () => {
  const help = helpText('linux')
  const row = help.slice(help.indexOf('--video-start'), help.indexOf('--', help.indexOf('--video-start') + 2))
  assert.match(row, /default: the tracking CSV's frame clock \(-w\), else the timesync file, else the ULID/)
})

test('didYouMean: a device name one or two letters off a listed one gets it; a short or far one gets none', () => {
  const names = ['default', 'ra_mic', 'ra_sink.monitor', 'alsa_input.usb-Blue_Yeti-00.analog-stereo']
  assert.equal(editDistance('ra_mc', 'ra_mic'), 1)
  assert.equal(editDistance('kitten', 'sitting'), 3)
  assert.equal(didYouMean('ra_mc', names), 'ra_mic', 'a letter dropped')
  assert.equal(didYouMean('ra_mik', names), 'ra_mic', 'a letter changed')
  assert.equal(didYouMean('RA_MIC', names), 'ra_mic', 'the case')
  assert.equal(didYouMean('ra_sink.monitr', names), 'ra_sink.monitor')
  assert.equal(didYouMean('alsa_input.usb-Blue_Yeti-00.analog-mono', names), null, 'four letters off')
  assert.equal(didYouMean('mic', ['mix', 'ra_mic']), 'mix', 'a short name: one letter at most')
  assert.equal(didYouMean('ab', ['ac']), null, 'too short to guess')
  assert.equal(didYouMean('ra_mic', names), null, 'listed: nothing to suggest')
})

test('the script reads in a 120-column editor: no line longer, however the formatter left it', () => {
  const lines = fs.readFileSync(new URL('../record-audio.mts', import.meta.url), 'utf8').split('\n')
  const long = lines.map((line, i) => [i + 1, [...line].length]).filter(([, length]) => length > 120)
  assert.deepEqual(long, [])
})

test("ULID time: the ULID spec's example, and round trips through an independent encoder", () => {
  assert.equal(ulidTimeMs('01ARYZ6S41TSV4RRFFQ69G5FAV'), 1469918176385)
  assert.equal(ulidTimeMs('01aryz6s41tsv4rrffq69g5fav'), 1469918176385)
  for (const ms of [0, 1, Date.UTC(2026, 10, 27, 12, 0, 0, 123), 2 ** 48 - 1]) assert.equal(ulidTimeMs(ulidAt(ms)), ms)
  assert.throws(() => ulidTimeMs('8ZZZZZZZZZZZZZZZZZZZZZZZZZ'), /not a ULID/)
  assert.throws(() => ulidTimeMs('01ARYZ6S4U'), /not a ULID/)
})

test('newest recording: the greatest ULID name, never a decoy mp4, whatever the mtimes or case', () => {
  const older = ulidAt(Date.UTC(2026, 0, 1))
  const newer = ulidAt(Date.UTC(2026, 0, 2))
  const names = [
    `${older}.mp4`,
    `${newer.toLowerCase()}.mp4`,
    'timelapse.mp4',
    `${newer}.mp4.audmux_tmp.mp4`,
    'centered-feed-ind01.mp4',
    `${newer}-with-audio.mp4`,
    `${newer}.csv`,
    'zzzzzzzzzzzzzzzzzzzzzzzzzz.mp4',
    `${older}.MP4`,
  ]
  assert.equal(newestRecording(names), `${newer.toLowerCase()}.mp4`)
  assert.equal(newestRecording(['timelapse.mp4', `${newer}-with-audio.mp4`]), undefined)
  assert.equal(newestRecording([]), undefined)
})

test('names: free names never reuse an existing file; sync and muxed names follow their sources', () => {
  const taken = new Set(['f-audio.wav', 'f-audio-2.wav'])
  assert.equal(
    freeName('f-audio.wav', (f) => taken.has(f)),
    'f-audio-3.wav',
  )
  assert.equal(
    freeName('new.wav', (f) => taken.has(f)),
    'new.wav',
  )
  assert.equal(syncFileFor('feed 1-audio.wav'), 'feed 1-audio-sync.json')
  assert.equal(
    muxedFileFor('f/01ARYZ6S41TSV4RRFFQ69G5FAV.mp4', '-with-audio.mp4'),
    'f/01ARYZ6S41TSV4RRFFQ69G5FAV-with-audio.mp4',
  )
})

test('capture arguments: PCM WAV, RF64 past 4 GiB, flushed packets, info log, -y on the name reserved empty (O_EXCL)', () => {
  const args = captureArgs({ format: 'pulse', device: 'mic', sampleRate: 48000, channels: 1 }, 'out.wav')
  const after = (flag) => args[args.indexOf(flag) + 1]
  assert.equal(after('-f'), 'pulse')
  assert.equal(after('-i'), 'mic')
  assert.equal(after('-c:a'), 'pcm_s16le')
  assert.equal(after('-rf64'), 'auto')
  assert.equal(after('-flush_packets'), '1')
  assert.equal(after('-loglevel'), 'info')
  assert.ok(args.includes('-y') && !args.includes('-n'))
  assert.equal(args.at(-1), 'out.wav')
  assert.ok(!args.includes('-use_wallclock_as_timestamps'))
})

test('capture arguments for macOS and Windows (faked: these devices cannot exist here): wall-clock stamps', () => {
  const mac = captureArgs({ format: 'avfoundation', device: ':0', sampleRate: 48000, channels: 1 }, 'o.wav')
  assert.deepEqual(mac.slice(mac.indexOf('-use_wallclock_as_timestamps'), mac.indexOf('-i') + 2), [
    '-use_wallclock_as_timestamps',
    '1',
    '-f',
    'avfoundation',
    '-i',
    ':0',
  ])
  const win = captureArgs({ format: 'dshow', device: 'audio=Mic (USB)', sampleRate: 44100, channels: 2 }, 'o.wav')
  assert.deepEqual(win.slice(win.indexOf('-f'), win.indexOf('-i') + 2), [
    '-f',
    'dshow',
    '-sample_rate',
    '44100',
    '-channels',
    '2',
    '-audio_buffer_size',
    '20', // not dshow's 500 ms: the first packet's stamp is its end
    '-i',
    'audio=Mic (USB)',
  ])
})

test('wall-clock starts (macOS and Windows faked: only their logs are made up): one packet earlier than its stamp', () => {
  const log = (fmt) =>
    `Input #0, ${fmt}, from ':0':\n  Duration: N/A, start: 1795817200.612756, bitrate: 768 kb/s\n  Stream #0:0: Audio`
  const mac = parseInputStart(log('avfoundation'), 'avfoundation', 48000)
  assert.equal(mac.source, 'ffmpeg-wallclock')
  assert.ok(Math.abs(mac.epochS - (1795817200.612756 - 512 / 48000)) < 1e-6, String(mac.epochS))
  const win = parseInputStart(log('dshow'), 'dshow', 44100)
  assert.ok(Math.abs(win.epochS - (1795817200.612756 - 0.02)) < 1e-6, String(win.epochS))
})

test('audio start: read from a real ffmpeg log of a capture-like input', () => {
  requireBinary('ffmpeg')
  // lavfi stamps no epoch, so a real log is made and its start value checked for the pattern.
  const log = run('ffmpeg', [
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'info',
    '-f',
    'lavfi',
    '-i',
    'sine=r=48000:d=0.1',
    '-f',
    'null',
    '-',
  ]).stderr
  assert.match(log, /Input #0, lavfi, from/)
  assert.equal(parseInputStart(log, 'pulse'), undefined, 'start 0 is not an epoch time')
  const pulseLog =
    "Guessed Channel Layout for Input Stream #0.0 : mono\nInput #0, pulse, from 'ra.monitor':\n  Duration: N/A, start: 1795817200.612756, bitrate: 768 kb/s\n  Stream #0:0: Audio: pcm_s16le, 48000 Hz, mono"
  assert.deepEqual(parseInputStart(pulseLog, 'pulse'), { epochS: 1795817200.612756, source: 'ffmpeg-input-start' })
  assert.equal(parseInputStart(pulseLog.replace('pulse,', 'avfoundation,'), 'avfoundation').source, 'ffmpeg-wallclock')
})

test('ffmpeg error line: the last line that says what went wrong', () => {
  assert.equal(
    ffmpegErrorLine('[pulse @ 0x5] pa_simple_new failed: No such entity\nnope: Input/output error\n'),
    'nope: Input/output error',
  )
  assert.equal(
    ffmpegErrorLine(
      "Input #0, alsa, from 'x':\n  Duration: N/A\n[alsa @ 0x1] cannot open audio device x (No such file or directory)\nx: Input/output error\nExiting normally\n",
    ),
    'x: Input/output error',
  )
  assert.equal(
    ffmpegErrorLine('Exiting normally, received signal 2.\n'),
    'Exiting normally, received signal 2.',
    'nothing better: the last line',
  )
})

test('WAV header: a real finalized file, and the same file with its sizes left unwritten', async () => {
  const { wavRepair } = await import('../dist/record-audio.mjs')
  const dir = tempDir()
  const wav = path.join(dir, 'a.wav')
  assert.equal(
    run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=r=48000:d=1', '-ac', '2', '-c:a', 'pcm_s16le', wav])
      .status,
    0,
  )
  const bytes = fs.readFileSync(wav)
  const info = parseWavHeader(bytes.subarray(0, 4096), bytes.length)
  assert.deepEqual(info, {
    channels: 2,
    sampleRate: 48000,
    bitsPerSample: 16,
    dataOffset: readWav(wav).dataOffset,
    dataBytes: 48000 * 4,
    dataSizeWritten: true,
    finalized: true,
    junkOffset: null,
  })
  const broken = Buffer.from(bytes)
  broken.writeUInt32LE(0xffffffff, 4)
  broken.writeUInt32LE(0xffffffff, info.dataOffset - 4)
  const guessed = parseWavHeader(broken, broken.length)
  assert.equal(guessed.finalized, false)
  assert.equal(guessed.dataBytes, 48000 * 4)
  assert.equal(guessed.dataSizeWritten, false)
  // A RIFF size past the file beside a data size that fits: the data keeps its size, a LIST after it is no audio.
  const listed = Buffer.concat([bytes, Buffer.from('LIST\x04\x00\x00\x00INFO', 'latin1')])
  listed.writeUInt32LE(listed.length - 8 + 100, 4)
  const kept = parseWavHeader(listed.subarray(0, 4096), listed.length)
  assert.deepEqual([kept.finalized, kept.dataSizeWritten, kept.dataBytes], [false, true, 48000 * 4])
  const repair = wavRepair(listed.subarray(0, 4096), listed.length)
  assert.deepEqual(repair.patches, [{ offset: 4, bytes: Buffer.from(new Uint32Array([listed.length - 8]).buffer) }])
  assert.throws(() => parseWavHeader(Buffer.from('not a wav at all'), 16), /not a WAV/)
})

test('mp4 finalized: moov found in a real finished file, not in a truncated (still-writing) one', () => {
  const dir = tempDir()
  const mp4 = path.join(dir, 'v.mp4')
  assert.equal(
    run('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=64x48:rate=10:d=1',
      '-c:v',
      'mpeg4',
      '-tag:v',
      'mp4v',
      mp4,
    ]).status,
    0,
  )
  assert.equal(isFinalizedMp4(mp4), true)
  const bytes = fs.readFileSync(mp4)
  const moovAt = bytes.indexOf('moov') - 4
  const partial = path.join(dir, 'partial.mp4')
  fs.writeFileSync(partial, bytes.subarray(0, moovAt + 20)) // moov begun but not whole
  assert.equal(isFinalizedMp4(partial), false)
  fs.writeFileSync(partial, bytes.subarray(0, moovAt))
  assert.equal(isFinalizedMp4(partial), false)
  // OpenCV's in-progress layout: mdat with size 0 (to end of file), no moov.
  const mdat0 = Buffer.concat([
    bytes.subarray(0, bytes.indexOf('mdat') - 4),
    Buffer.from([0, 0, 0, 0]),
    Buffer.from('mdat'),
    Buffer.alloc(1000),
  ])
  assert.equal(
    hasMoov(mdat0.length, (o, n) => mdat0.subarray(o, o + n)),
    false,
  )
})

test('mux plan: late audio is delayed by whole samples, then cut to the video', () => {
  const base = { audioFile: 'a.wav', videoFile: 'v.mp4', muxedFile: 'm.mp4', sampleRate: 48000, videoDurationS: 10 }
  const late = muxPlan({ ...base, offsetS: 0.5234 })
  assert.equal(late.delaySamples, Math.round(0.5234 * 48000))
  assert.equal(late.trimSamples, 0)
  assert.equal(late.filter, `adelay=delays=${late.delaySamples}S:all=1,apad=whole_len=480000,atrim=end_sample=480000`)
  assert.deepEqual(late.args.slice(late.args.indexOf('-c:v'), late.args.indexOf('-c:v') + 2), ['-c:v', 'copy'])
  for (const banned of ['-shortest', '-itsoffset', '-y']) assert.ok(!late.args.includes(banned), banned)
  assert.ok(late.args.includes('-n'))
})

test('mux plan: early audio loses whole samples at the start; zero offset only cuts; an unfinished video is not cut', () => {
  const base = { audioFile: 'a.wav', videoFile: 'v.mp4', muxedFile: 'm.mp4', sampleRate: 44100, videoDurationS: 2 }
  const early = muxPlan({ ...base, offsetS: -1.25 })
  assert.equal(early.trimSamples, 55125)
  assert.equal(
    early.filter,
    'atrim=start_sample=55125,asetpts=PTS-STARTPTS,apad=whole_len=88200,atrim=end_sample=88200',
  )
  assert.equal(muxPlan({ ...base, offsetS: 0 }).filter, 'apad=whole_len=88200,atrim=end_sample=88200')
  assert.equal(muxPlan({ ...base, offsetS: 0.1, videoDurationS: null }).filter, 'adelay=delays=4410S:all=1')
  assert.equal(muxPlan({ ...base, offsetS: 0, videoDurationS: null }).filter, 'anull')
})

test('mux plan, run for real: a click 0.3 s into the WAV lands where the offset says', () => {
  const dir = tempDir()
  const wav = path.join(dir, 'click.wav')
  const video = path.join(dir, 'v.mp4')
  // 2 s of silence with one full-scale sample at 0.3 s, and a 2 s video.
  const samples = new Int16Array(96000)
  samples[14400] = 32000
  const header = Buffer.alloc(44)
  header.write('RIFF', 0)
  header.writeUInt32LE(36 + samples.byteLength, 4)
  header.write('WAVEfmt ', 8)
  header.writeUInt32LE(16, 16)
  header.writeUInt16LE(1, 20)
  header.writeUInt16LE(1, 22)
  header.writeUInt32LE(48000, 24)
  header.writeUInt32LE(96000, 28)
  header.writeUInt16LE(2, 32)
  header.writeUInt16LE(16, 34)
  header.write('data', 36)
  header.writeUInt32LE(samples.byteLength, 40)
  fs.writeFileSync(wav, Buffer.concat([header, Buffer.from(samples.buffer)]))
  assert.equal(
    run('ffmpeg', [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=64x48:rate=25:d=2',
      '-c:v',
      'mpeg4',
      '-tag:v',
      'mp4v',
      video,
    ]).status,
    0,
  )
  for (const offsetS of [0.25, -0.2]) {
    const muxed = path.join(dir, `m${offsetS}.mp4`)
    const plan = muxPlan({
      audioFile: wav,
      videoFile: video,
      muxedFile: muxed,
      sampleRate: 48000,
      channels: 1,
      offsetS,
      videoDurationS: 2,
    })
    const done = run('ffmpeg', plan.args)
    assert.equal(done.status, 0, done.stderr)
    const pcm = run('ffmpeg', ['-v', 'error', '-i', muxed, '-f', 's16le', '-ac', '1', '-'], {
      encoding: 'buffer',
    }).stdout
    const decoded = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.length / 2)
    let peakAt = 0
    for (let i = 1; i < decoded.length; i++) if (Math.abs(decoded[i]) > Math.abs(decoded[peakAt])) peakAt = i
    const expectedAt = 14400 + Math.round(offsetS * 48000)
    assert.ok(Math.abs(peakAt - expectedAt) <= 2, `offset ${offsetS}: click at ${peakAt}, expected ${expectedAt}`)
  }
})

const nasty = [
  'plain',
  'with space',
  "it's",
  'a"b',
  '$HOME',
  '`date`',
  'new\nline',
  'tab\there',
  'Schrödinger 🐟',
  '=cmd',
  '~user',
  '!bang',
  '-dash',
  '*.mp4',
  'back\\slash',
  '',
]

test('POSIX quoting: bash, sh and zsh each read every nasty word back unchanged', () => {
  for (const shell of ['bash', 'sh', 'zsh']) {
    requireBinary(shell)
    const script = `printf '%s\\0' ${nasty.map(quotePosix).join(' ')}`
    const out = run(shell, ['-c', script])
    assert.equal(out.status, 0, `${shell}: ${out.stderr}`)
    assert.deepEqual(out.stdout.split('\0').slice(0, -1), nasty, shell)
  }
})

test('PowerShell quoting (faked: no PowerShell here): single quotes with every single-quote character doubled', () => {
  assert.equal(
    quotePowerShellArg('C:\\Users\\me\\feed\\01ARYZ6S41TSV4RRFFQ69G5FAV.mp4'),
    'C:\\Users\\me\\feed\\01ARYZ6S41TSV4RRFFQ69G5FAV.mp4',
  )
  assert.equal(quotePowerShellArg("it's here"), "'it''s here'")
  assert.equal(quotePowerShellArg('a\u2019b'), "'a\u2019\u2019b'")
  assert.equal(quotePowerShellArg('$env:HOME'), "'$env:HOME'")
  assert.equal(quotePowerShellArg(''), "''")
  assert.equal(
    quotePowerShellArg('C:\\data\\fish,2\\a.mp4'),
    "'C:\\data\\fish,2\\a.mp4'",
    'a bare comma makes an array',
  )
  const command = formatCommand(
    'C:\\ffmpeg\\bin\\ffmpeg.exe',
    ['-i', 'C:\\my videos\\x.mp4', '-filter:a', 'adelay=delays=10S:all=1'],
    'win32',
  )
  assert.equal(command, "& C:\\ffmpeg\\bin\\ffmpeg.exe -i 'C:\\my videos\\x.mp4' -filter:a 'adelay=delays=10S:all=1'")
})

test('offset in words says the sign', () => {
  assert.match(describeOffset(0.1234), /audio started 123\.4 ms after the video's first frame/)
  assert.match(
    describeOffset(-0.05),
    /audio started 50\.0 ms before the video's first frame: its first 50\.0 ms are cut/,
  )
  assert.match(describeOffset(0.0001), /together/)
})

test('WAV repair: a real file with its sizes unset comes back byte for byte; a finalized one needs nothing', async () => {
  const { wavRepair } = await import('../dist/record-audio.mjs')
  const dir = tempDir()
  const wav = path.join(dir, 'a.wav')
  // The capture's own container options, so the header has the JUNK chunk a recording has.
  assert.equal(
    run('ffmpeg', ['-v', 'error', '-f', 'lavfi', '-i', 'sine=r=48000:d=1.5', '-c:a', 'pcm_s16le', '-rf64', 'auto', wav])
      .status,
    0,
  )
  const original = fs.readFileSync(wav)
  assert.equal(wavRepair(original.subarray(0, 4096), original.length), null)
  const info = parseWavHeader(original.subarray(0, 4096), original.length)
  const killed = Buffer.from(original)
  killed.writeUInt32LE(0xffffffff, 4) // what ffmpeg leaves when it never finalizes
  killed.writeUInt32LE(0xffffffff, info.dataOffset - 4)
  const repair = wavRepair(killed.subarray(0, 4096), killed.length)
  assert.equal(repair.kind, 'RIFF')
  for (const patch of repair.patches) patch.bytes.copy(killed, patch.offset)
  assert.deepEqual(killed, original)
  // A torn last sample frame stays outside the data chunk.
  const torn = Buffer.concat([original, Buffer.from([1])])
  torn.writeUInt32LE(0xffffffff, info.dataOffset - 4)
  assert.equal(wavRepair(torn.subarray(0, 4096), torn.length).dataBytes, info.dataBytes)
})

test('video timing: the ULID alone, a camera on time: start = ULID ± a frame, no drift to correct', async () => {
  const { videoTiming } = await import('../dist/record-audio.mjs')
  const ulid = 1795817200.5
  const t = videoTiming({
    ulidEpochS: ulid,
    userStartEpochS: null,
    timesync: null,
    clockOffsetS: 0,
    frames: 300,
    nominalFps: 30,
    mtimeEpochS: ulid + 0.03 + 299 / 30, // the mtime marks the last frame: 299 periods after the first
    driftFix: true,
  })
  assert.equal(t.startEpochS, ulid)
  assert.equal(t.source, 'ulid')
  assert.equal(t.uncertaintyS, 1 / 30)
  assert.equal(t.nominalDurationS, 10)
  assert.equal(t.spanSource, 'mtime')
  assert.ok(Math.abs(t.driftAtEndMs - (30 * 300) / 299) < 1e-3, String(t.driftAtEndMs))
  assert.equal(t.driftReason, 'within a frame, nothing to correct')
  assert.equal(t.itsscale, null, 'within a frame')
  assert.deepEqual(t.warnings, [])
})

test('video timing: a camera 1 % slower than nominal, seen from mtime: drift corrected with itsscale S/D, and the ambiguity said', async () => {
  const { videoTiming } = await import('../dist/record-audio.mjs')
  const ulid = 1795817200.5
  const frames = 1782 // 60 s at a real 29.7 fps, stamped as 30 fps: D = 59.4 s
  const t = videoTiming({
    ulidEpochS: ulid,
    userStartEpochS: null,
    timesync: null,
    clockOffsetS: 0,
    frames,
    nominalFps: 30,
    mtimeEpochS: ulid + 1781 / 29.7, // the last frame, N − 1 real periods after the first
    driftFix: true,
  })
  assert.ok(Math.abs(t.itsscale - 60 / 59.4) < 1e-8, String(t.itsscale)) // epoch seconds carry ~0.2 µs
  assert.match(t.driftReason, /anchored to its mtime/)
  assert.ok(Math.abs(t.driftPpm - (60 / 59.4 - 1) * 1e6) < 1e-2)
  assert.match(
    t.warnings[0],
    /camera ran 1\.01 % slower than its nominal 30 fps, or the first frame came that much later; a timesync file tells them apart/,
  )
  const kept = videoTiming({
    ulidEpochS: ulid,
    userStartEpochS: null,
    timesync: null,
    clockOffsetS: 0,
    frames,
    nominalFps: 30,
    mtimeEpochS: ulid + 1781 / 29.7,
    driftFix: false,
  })
  assert.equal(kept.itsscale, null)
  assert.equal(kept.driftReason, 'not corrected (--no-drift-fix)')
  assert.ok(kept.driftPpm > 10000)
})

test('video timing: a timesync file gives the start and the real rate; one from another run is not used', async () => {
  const { videoTiming } = await import('../dist/record-audio.mjs')
  const first = 1795817200.5
  const timesync = { firstS: first, lastS: first + 1780 / 29.7, rows: 1781 } // N − 1 rows for N frames
  const t = videoTiming({
    ulidEpochS: first - 5.03,
    userStartEpochS: null,
    timesync,
    clockOffsetS: 0,
    frames: 1782,
    nominalFps: 30,
    mtimeEpochS: first + 60,
    driftFix: true,
  })
  assert.equal(t.startEpochS, first, 'a 5 s start hook between ULID and first frame does not matter')
  assert.equal(t.source, 'timesync')
  assert.equal(t.spanSource, 'timesync')
  assert.ok(Math.abs(t.realSpanS - 60) < 1e-5)
  assert.ok(Math.abs(t.itsscale - 60 / 59.4) < 1e-7)
  const stale = videoTiming({
    ulidEpochS: first + 100,
    userStartEpochS: null,
    timesync,
    clockOffsetS: 0,
    frames: 1782,
    nominalFps: 30,
    mtimeEpochS: null,
    driftFix: true,
  })
  assert.equal(stale.source, 'ulid')
  assert.match(stale.warnings[0], /belongs to another recording: not used/)
})

test("video timing: the timesync rows are a frame clock too: frame 0's capture time, not its buffered read", async () => {
  const { videoTiming } = await import('../dist/record-audio.mjs')
  // The camera took frame k at takenS + k / 30; TracktorLive read the first ones 0.4 s late, 3 ms apart.
  const takenS = 1795817200.25
  const frames = 1800
  const timesS = Float64Array.from({ length: frames - 1 }, (_, k) =>
    Math.max(takenS + 0.4 + k * 0.003, takenS + k / 30 + ((k * 7919) % 9) / 1000),
  )
  const timesync = { firstS: timesS[0], lastS: timesS.at(-1), rows: timesS.length, timesS }
  const clues = {
    ulidEpochS: takenS - 0.1,
    userStartEpochS: null,
    clockOffsetS: 0,
    frames,
    nominalFps: 30,
    mtimeEpochS: null,
    driftFix: true,
  }
  const t = videoTiming({ ...clues, timesync })
  assert.equal(t.source, 'timesync')
  assert.ok(Math.abs(t.startEpochS - takenS) < 0.001, `start ${(t.startEpochS - takenS) * 1000} ms off`)
  assert.ok(Math.abs(t.clock.fps - 30) < 0.01, String(t.clock.fps))
  assert.ok(t.clock.bufferedFrames > 5, String(t.clock.bufferedFrames))
  assert.equal(t.itsscale, null, 'a camera at its nominal rate is not retimed')
  // The first and last rows alone: 0.4 s late, and the burst reads as a fast camera.
  const span = videoTiming({ ...clues, timesync: { ...timesync, timesS: undefined } })
  assert.ok(span.startEpochS - takenS > 0.39)
  assert.ok(span.itsscale < 0.997, String(span.itsscale))
})

test('video timing: --video-start beats every anchor, and --clock-offset moves every video time', async () => {
  const { videoTiming } = await import('../dist/record-audio.mjs')
  const base = {
    ulidEpochS: 1795817200,
    timesync: { firstS: 1795817200.03, lastS: 1795817200.063, rows: 2 },
    frames: null,
    nominalFps: null,
    mtimeEpochS: null,
    driftFix: true,
  }
  const user = videoTiming({ ...base, userStartEpochS: 1795817201.25, clockOffsetS: 0.5 })
  assert.equal(user.startEpochS, 1795817201.75)
  assert.equal(user.source, 'video-start-flag')
  assert.equal(user.uncertaintyS, 0)
  assert.equal(videoTiming({ ...base, userStartEpochS: null, clockOffsetS: -2 }).startEpochS, 1795817198.03)
})

test('epoch times, frame rates, audio span check, and itsscale in the mux', async () => {
  const { parseEpoch, parseRate, checkAudioSpan } = await import('../dist/record-audio.mjs')
  assert.equal(parseEpoch('1795817200.25'), 1795817200.25)
  assert.equal(parseEpoch('2026-11-27T22:24:51.770Z'), Date.UTC(2026, 10, 27, 22, 24, 51, 770) / 1000)
  assert.equal(parseEpoch('2026-11-27T23:24:51.770+01:00'), Date.UTC(2026, 10, 27, 22, 24, 51, 770) / 1000)
  assert.ok(Number.isNaN(parseEpoch('2026-11-27T22:24:51')), 'no zone: ambiguous, refused')
  assert.ok(Number.isNaN(parseEpoch('yesterday')))
  assert.equal(parseRate('30000/1001'), 30000 / 1001)
  assert.equal(parseRate('0/0'), null)
  assert.equal(checkAudioSpan(10.05, 10, 10.2).ok, true)
  assert.equal(checkAudioSpan(9.9, 10, 10.2).ok, false, 'samples missing before the stop')
  assert.equal(checkAudioSpan(10.4, 10, 10.2).ok, false, 'more samples than time passed')
  assert.equal(checkAudioSpan(3600.3, 3600, 3600.1).ok, true, 'an hour on a card 80 ppm fast: within 200 ppm')
  assert.equal(checkAudioSpan(3600.3, 3600, 3600.1, 5).ok, false, 'measured to 5 ppm: 300 ms is too much')
  const plan = muxPlan({
    audioFile: 'a.wav',
    videoFile: 'v.mp4',
    muxedFile: 'm.mp4',
    sampleRate: 48000,
    channels: 1,
    offsetS: 0,
    videoDurationS: 60,
    itsscale: 60 / 59.4,
  })
  assert.deepEqual(plan.args.slice(plan.args.indexOf('-itsscale'), plan.args.indexOf('-itsscale') + 4), [
    '-itsscale',
    (60 / 59.4).toFixed(9),
    '-i',
    'v.mp4',
  ])
  usageError(['feed', '--video-start', 'tomorrow'], /--video-start "tomorrow" is not a time/)
  usageError(['feed', '--clock-offset', 'x'], /--clock-offset "x" is not a number/)
  usageError(
    ['feed', '--clock-offset', '-0.5'],
    /-0\.5: a negative value needs an equals sign, e\.g\. --clock-offset=-0\.5/,
  )
  usageError(['feed', '--timesync', 'x.csv'], /--timesync "x\.csv" must be the \.parquet file/)
})

test('what AAC cannot hold is muxed whole: FLAC in Matroska past 96 kHz, at rates AAC lacks, PCM past FLAC', async () => {
  const { muxedNameFor, muxCodec } = await import('../dist/record-audio.mjs')
  assert.equal(muxedNameFor('/v/x-with-audio.mp4', muxCodec(384000, 1)), '/v/x-with-audio.mkv')
  assert.equal(muxedNameFor('/v/x-with-audio.mp4', muxCodec(96000, 1)), '/v/x-with-audio.mp4')
  assert.deepEqual(muxCodec(48000, 2), { codec: 'aac', container: 'mp4', frameSamples: 1024, why: null })
  assert.equal(muxCodec(50000, 1).codec, 'flac', 'a rate AAC lacks')
  assert.match(muxCodec(50000, 1).why, /AAC has no 50000 Hz/)
  assert.equal(muxCodec(48000, 12).codec, 'pcm_s16le', 'more channels than AAC and FLAC hold')
  assert.equal(muxCodec(768000, 1).codec, 'pcm_s16le', "past FLAC's 655350 Hz")
  const plan = muxPlan({
    audioFile: 'a.wav',
    videoFile: 'v.mp4',
    muxedFile: 'm.mkv',
    sampleRate: 250000,
    channels: 1,
    offsetS: 0.1,
    videoDurationS: 1,
  })
  assert.deepEqual(plan.args.slice(plan.args.indexOf('-c:a'), plan.args.indexOf('-c:a') + 2), ['-c:a', 'flac'])
  assert.ok(!plan.args.includes('aresample') && !plan.filter.includes('aresample'), 'never resampled')
})

test('device lists: ffmpeg -sources lines parsed, the default marked; avfoundation (faked: no macOS here) asks for its log', async () => {
  const { parseSources, listDevicesArgs } = await import('../dist/record-audio.mjs')
  const text =
    'Auto-detected sources for pulse:\n  ra_sink.monitor [Monitor of Null Output] (none)\n* mic [USB Microphone Mono] (none)\n'
  assert.deepEqual(parseSources(text), [
    { name: 'ra_sink.monitor', description: 'Monitor of Null Output', isDefault: false },
    { name: 'mic', description: 'USB Microphone Mono', isDefault: true },
  ])
  assert.deepEqual(listDevicesArgs('pulse'), ['-hide_banner', '-sources', 'pulse'])
  assert.deepEqual(listDevicesArgs('avfoundation'), [
    '-hide_banner',
    '-f',
    'avfoundation',
    '-list_devices',
    'true',
    '-i',
    '',
  ])
})

test('input level in dBFS, and the status line with and without color', async () => {
  const { levelDbfs, statusLine } = await import('../dist/record-audio.mjs')
  assert.equal(levelDbfs(new Int16Array([32767, -32768, 32767, -32768])) > -0.001, true)
  assert.equal(levelDbfs(new Int16Array(100)), -Infinity)
  const sine = Int16Array.from({ length: 48000 }, (_, i) =>
    Math.round(16384 * Math.sin((2 * Math.PI * 440 * i) / 48000)),
  )
  assert.ok(Math.abs(levelDbfs(sine) - 20 * Math.log10(0.5 / Math.SQRT2)) < 0.01)
  const plain = statusLine(3723.4, 123_456_789, -23.44, false)
  assert.equal(plain, `● 01:02:03  123.5 MB   -23.4 dBFS ${'▮'.repeat(14)}`)
  assert.ok(!plain.includes('\x1b'))
  assert.ok(statusLine(1, 0, -Infinity, true).includes('\x1b[31m'))
  assert.match(statusLine(1, 0, -Infinity, false), /silence/)
})

test('no feed id: audio named by its UTC start, and recordings ranked by how much of the audio they cover', async () => {
  const { fileTimestamp, rankByOverlap } = await import('../dist/record-audio.mjs')
  assert.equal(settings([]).feedId, null)
  assert.equal(fileTimestamp(new Date(Date.UTC(2026, 10, 27, 22, 24, 51, 770))), '20261127T222451Z')
  const ranked = rankByOverlap(
    [
      { file: 'old/A.mp4', startEpochS: 0, endEpochS: 50 },
      { file: 'b/B.mp4', startEpochS: 95, endEpochS: 130 },
      { file: 'a/A.mp4', startEpochS: 90, endEpochS: 200 },
    ],
    100,
    150,
  )
  assert.deepEqual(
    ranked.map((c) => [c.file, c.overlapS]),
    [
      ['a/A.mp4', 50],
      ['b/B.mp4', 30],
      ['old/A.mp4', 0],
    ],
  )
})

test('plot geometry: one time axis for both, the first frame and the first sample where their epochs put them', async () => {
  const { plotArgs, PLOT_WIDTH } = await import('../dist/record-audio.mjs')
  const p = plotArgs({
    audioFile: 'a.wav',
    plotFile: 'p.png',
    audioStartEpochS: 1001,
    audioDurationS: 10,
    videoStartEpochS: 1000,
    videoDurationS: 10,
  })
  const pxPerS = (PLOT_WIDTH - 40) / 11
  assert.equal(p.videoX, 20)
  assert.equal(p.audioX, Math.round(20 + pxPerS))
  assert.ok(p.args.includes('-n'), 'never overwrites')
  usageError(['feed', '--plot', 'p.jpg'], /--plot "p\.jpg" must end in \.png/)
})

test('video timing: an mtime far past any drift (a copied file) corrects nothing and says why', async () => {
  const { videoTiming } = await import('../dist/record-audio.mjs')
  const ulid = 1795817200.5
  const t = videoTiming({
    ulidEpochS: ulid,
    userStartEpochS: null,
    timesync: null,
    clockOffsetS: 0,
    frames: 300,
    nominalFps: 30,
    mtimeEpochS: ulid + 3600,
    driftFix: true,
  })
  assert.equal(t.itsscale, null)
  assert.ok(
    t.warnings.some((w) => /too far for a camera's drift \(was the file copied\?\): no drift correction/.test(w)),
  )
})

test('capture outcome: a write error while finishing is a failure even with exit 0 (the failing disk faked: ffmpeg log lines)', async () => {
  const { captureOutcome } = await import('../dist/record-audio.mjs')
  const stopped = { stopRequestedEpochS: 1795817200, signal: null }
  assert.equal(captureOutcome({ ...stopped, exitCode: 0, log: 'size=  100kB time=00:00:01.00\n' }).ok, true)
  assert.equal(captureOutcome({ ...stopped, exitCode: 255, log: 'Exiting normally, received signal 2.\n' }).ok, true)
  const full = captureOutcome({
    ...stopped,
    exitCode: 0,
    log: '[wav @ 0x55] Error writing trailer of /d/feed-audio.wav: No space left on device\n',
  })
  assert.equal(full.ok, false)
  assert.match(full.why, /Error writing trailer of .*: No space left on device/)
  assert.equal(captureOutcome({ ...stopped, exitCode: 1, log: 'x: Input/output error\n' }).ok, false)
  assert.equal(captureOutcome({ ...stopped, exitCode: null, signal: 'SIGKILL', log: '' }).ok, false)
  const own = captureOutcome({ stopRequestedEpochS: null, exitCode: 1, signal: null, log: 'dev: Generic error\n' })
  assert.deepEqual([own.ok, own.stoppedByItself], [false, true])
})

test('publish: a hard link where the disk has them, else an exclusive create and a rename (FAT faked: link throws EPERM); never replaces', async () => {
  const { publish } = await import('../dist/record-audio.mjs')
  const dir = tempDir()
  const partial = path.join(dir, 'm.partial-1.mp4')
  fs.writeFileSync(partial, 'muxed')
  publish(partial, path.join(dir, 'a.mp4'))
  assert.equal(fs.readFileSync(path.join(dir, 'a.mp4'), 'utf8'), 'muxed')
  assert.ok(!fs.existsSync(partial))
  fs.writeFileSync(partial, 'muxed again')
  const noLinks = () => {
    throw Object.assign(new Error('link: EPERM'), { code: 'EPERM' })
  }
  publish(partial, path.join(dir, 'b.mp4'), noLinks)
  assert.equal(fs.readFileSync(path.join(dir, 'b.mp4'), 'utf8'), 'muxed again')
  assert.ok(!fs.existsSync(partial))
  fs.writeFileSync(partial, 'third')
  assert.throws(() => publish(partial, path.join(dir, 'b.mp4'), noLinks), /EEXIST/)
  assert.equal(fs.readFileSync(path.join(dir, 'b.mp4'), 'utf8'), 'muxed again', 'the existing file is untouched')
})

test('sync record: what a recording stores reads back whole; an old file without timing settings gets the defaults', async () => {
  const { newSyncRecord, parseSyncRecord } = await import('../dist/record-audio.mjs')
  const timing = {
    timesyncFile: null,
    videoStartEpochS: 1795817201.5,
    clockOffsetS: -0.25,
    cameraLatencyS: 0.1,
    calibration: false,
    driftFix: false,
    events: true,
    allVideos: true,
  }
  const record = newSyncRecord({
    tool: 'record-audio 0.2.0',
    feedDir: '/lab/fish',
    audioFile: '/lab/fish-audio.wav',
    audioFormat: 'pulse',
    audioDevice: 'mic',
    audioSampleRate: 48000,
    audioChannels: 1,
    timing,
  })
  const back = parseSyncRecord(JSON.stringify({ ...record, audioStartEpochS: 1795817200.25, state: 'stopped' }))
  assert.deepEqual(back.timing, timing)
  assert.equal(back.audioStartEpochS, 1795817200.25)
  const old = parseSyncRecord(
    JSON.stringify({ audioFile: '/a.wav', audioStartEpochS: 1795817200, audioSampleRate: 48000, clockOffsetS: -0.5 }),
  )
  assert.deepEqual(old.timing, {
    timesyncFile: null,
    videoStartEpochS: null,
    clockOffsetS: -0.5,
    cameraLatencyS: null,
    calibration: true,
    driftFix: true,
    events: false,
    allVideos: false,
  })
  // A 0 stored before latencies were kept was the default, not a measurement: it reads back as none given.
  const { calibration: _, ...before } = timing
  const zero = parseSyncRecord(JSON.stringify({ ...record, timing: { ...before, cameraLatencyS: 0 } }))
  assert.equal(zero.timing.cameraLatencyS, null)
  // Since then, a --camera-latency=0 given is kept as given: a later mux does not apply a kept one instead.
  const given = parseSyncRecord(JSON.stringify({ ...record, timing: { ...timing, cameraLatencyS: 0 } }))
  assert.equal(given.timing.cameraLatencyS, 0)
  assert.throws(() => parseSyncRecord('{'), /not JSON/)
  assert.throws(() => parseSyncRecord('{"audioSampleRate":48000}'), /no audioFile/)
})

test('stop requests: signals within SAME_REQUEST_MS are one request', async () => {
  const { isNewRequest, SAME_REQUEST_MS } = await import('../dist/record-audio.mjs')
  assert.equal(isNewRequest(Number.NEGATIVE_INFINITY, 1000), true)
  assert.equal(isNewRequest(1000, 1001), false, 'npm forwards the ctrl-c ~1 ms after the terminal')
  assert.equal(isNewRequest(1000, 1000 + SAME_REQUEST_MS), true)
})

test("sound card clock: the lower envelope of bursts of looks gives the card's rate; a sawtooth delivery above it does not matter", async () => {
  const { cardClock, clockRatio } = await import('../dist/record-audio.mjs')
  const start = 1795817200
  const looksFor = (rateHz, burstAtS) =>
    burstAtS.flatMap((atS) =>
      Array.from({ length: 100 }, (_, i) => {
        const epochS = start + atS + i * 0.01
        // packets of 2048 frames land 80–125 ms after their last sample was captured
        const capturedS = epochS - start - 0.08 - (((i * 7) % 10) / 10) * 0.045
        return { epochS, frames: Math.floor((capturedS * rateHz) / 2048) * 2048 }
      }),
    )
  const fast = cardClock(looksFor(48048, [1, 20, 40, 60]), start, 48000)
  assert.ok(Math.abs(fast.ppm - 1000) < 3 * fast.uncertaintyPpm, `${fast.ppm} ± ${fast.uncertaintyPpm}`)
  assert.ok(fast.uncertaintyPpm < 200)
  assert.ok(Math.abs(clockRatio(fast, 48000, 60) - fast.rateHz / 48000) < 1e-12, 'clearly off: applied')
  const exact = cardClock(looksFor(48000, [1, 20, 40, 60]), start, 48000)
  assert.equal(clockRatio(exact, 48000, 60), 1, `${exact.ppm} ± ${exact.uncertaintyPpm}: nothing to correct`)
  assert.equal(cardClock(looksFor(48048, [1, 5]), start, 48000), null, 'under 10 s apart')
  assert.equal(cardClock(looksFor(48048, [1, 20]), start, 48000), null, 'two bursts: no scatter to judge by')
  // A device that delivers 2 s at once: a 1 s burst sees the file grow once at most, no envelope.
  const bursty = [1, 20, 40].flatMap((atS) =>
    Array.from({ length: 100 }, (_, i) => ({
      epochS: start + atS + i * 0.01,
      frames: Math.floor((atS + i * 0.01) / 2) * 96000,
    })),
  )
  assert.equal(cardClock(bursty, start, 48000), null, 'two-second deliveries: nothing to measure')
})

test("frame clock: the lower envelope of TracktorLive's read times gives the camera's rate and frame 0's capture time", async () => {
  const { frameClock, parseTrackingTimes, isFileSourceClock, csvEpochFromMtime } = await import(
    '../dist/record-audio.mjs'
  )
  // A camera at exactly 30.0007 fps; the first frames read in a burst 0.4 s late, 3 ms apart; then
  // reads 0–15 ms after each frame (tracking jitter); two frames stalled 100 ms.
  const fps = 30.0007
  const times = Array.from({ length: 600 }, (_, k) => {
    const taken = 2 + k / fps
    const read = Math.max(2 + 0.4 + k * 0.003, taken + ((k * 7919) % 16) / 1000)
    return k === 300 || k === 301 ? read + 0.1 : read
  })
  const clock = frameClock(times, 1795817200, 30)
  assert.ok(Math.abs(clock.fps - fps) < 0.002, String(clock.fps))
  assert.ok(Math.abs(clock.firstFrameEpochS - (1795817200 + 2)) < 0.001, String(clock.firstFrameEpochS - 1795817200))
  // buffered: read more than half a period above the line, 0.4 − k (1/fps − 3 ms) > 1 / (2 fps)
  const buffered = Array.from({ length: 40 }, (_, k) => k).filter((k) => 0.4 - k * (1 / fps - 0.003) > 1 / (2 * fps))
  assert.equal(clock.bufferedFrames, buffered.length)
  assert.ok(Math.abs(clock.firstReadLateS - 0.4) < 0.001)
  assert.equal(clock.offLineFrames, 2)
  assert.equal(frameClock(times.slice(0, 20), 0, 30), null, 'too few rows')

  assert.deepEqual(
    parseTrackingTimes('time,x0,y0\n0.5,1,2\n0.533,-1.0,-1.0\n0.56'),
    [0.5, 0.533],
    'a partial last row left out',
  )
  assert.throws(() => parseTrackingTimes('x0,y0\n'), /no time column/)
  assert.equal(isFileSourceClock([0, 1 / 30, 2 / 30], 30), true, 'a video file: time = frame / fps')
  assert.equal(isFileSourceClock([0.5, 0.533, 0.567], 30), false)
  assert.deepEqual(csvEpochFromMtime(1795817210.25, 10), {
    tInitEpochS: 1795817200.25,
    source: 'mtime',
    uncertaintyS: 0.005,
  })
})

test('video timing: the frame clock beats the timesync file and the ULID; --camera-latency is taken off every video time', async () => {
  const { videoTiming } = await import('../dist/record-audio.mjs')
  const ulid = 1795817200.5
  const frameClock = {
    firstFrameEpochS: ulid - 0.33,
    framePeriodS: 1 / 30.0007,
    fps: 30.0007,
    bufferedFrames: 14,
    firstReadLateS: 0.4,
    offLineFrames: 0,
    frames: 1800,
    epoch: { tInitEpochS: ulid - 0.5, source: 'watched', uncertaintyS: 0.001 },
    lastReadEpochS: ulid - 0.33 + 1799 / 30.0007,
  }
  const base = {
    ulidEpochS: ulid,
    userStartEpochS: null,
    timesync: { firstS: ulid + 0.07, lastS: ulid + 60, rows: 1799 },
    clockOffsetS: 0,
    frames: 1800,
    nominalFps: 30,
    mtimeEpochS: ulid + 120, // touched: the CSV says otherwise
    driftFix: true,
    frameClock,
  }
  const t = videoTiming(base)
  assert.equal(t.source, 'tracking-csv')
  assert.equal(t.startEpochS, ulid - 0.33)
  assert.equal(t.spanSource, 'tracking-csv')
  assert.ok(Math.abs(t.realSpanS - 1800 / 30.0007) < 1e-9)
  assert.equal(t.itsscale, null, '0.0007 fps over a minute is within a frame')
  assert.match(t.warnings.join(), /mtime is .* off its last frame in the tracking CSV/)
  assert.equal(videoTiming({ ...base, cameraLatencyS: 0.135 }).startEpochS, ulid - 0.33 - 0.135)
})

test('sync events: flashes are frames that jump to bright, clicks the first loud block after a quiet stretch', async () => {
  const { flashFrames, onsetBlocks, FLASH_MIN_JUMP, QUIET_BEFORE_ONSET_S } = await import('../dist/record-audio.mjs')
  const dark = Array.from({ length: 120 }, (_, k) => 16 + (k % 5)) // a dim scene, a little noise
  const flashed = dark.map((v, k) => (k === 0 || k === 30 || k === 60 || k === 61 ? 250 : v))
  assert.deepEqual(flashFrames(flashed), [0, 30, 60]) // a two-frame flash is one event
  assert.deepEqual(flashFrames(dark.map((v, k) => v + (k > 60 ? FLASH_MIN_JUMP - 10 : 0))), []) // lights dimmed up
  const blockS = 0.00025
  const peaks = Array.from({ length: 40000 }, (_, b) => 20 + ((b * 7919) % 40))
  for (const b of [1000, 9000, 9000 + Math.round(0.1 / blockS), 30000]) for (let i = 0; i < 8; i++) peaks[b + i] = 20000
  // The clap's echo 0.1 s later is inside QUIET_BEFORE_ONSET_S of it: not an event of its own.
  assert.ok(0.1 < QUIET_BEFORE_ONSET_S)
  assert.deepEqual(onsetBlocks(peaks, blockS), [1000, 9000, 30000])
  assert.deepEqual(
    onsetBlocks(
      peaks.map(() => 30),
      blockS,
    ),
    [],
  ) // a silent room
})

test('--all-videos: how much of each video the audio covers, the closing table, and the flags it rules out', async () => {
  const { audioCoverage, videoTable, parseCommand, UsageError } = await import('../dist/record-audio.mjs')
  // A 60 s trial: the audio (100 s) started 10 s into it; started 30 s before it; stopped 20 s into it.
  assert.deepEqual(audioCoverage(10, 100, 60), { coveredS: 50, silenceBeforeS: 10, silenceAfterS: 0 })
  assert.deepEqual(audioCoverage(-30, 100, 60), { coveredS: 60, silenceBeforeS: 0, silenceAfterS: 0 })
  assert.deepEqual(audioCoverage(-30, 50, 60), { coveredS: 20, silenceBeforeS: 0, silenceAfterS: 40 })
  assert.deepEqual(audioCoverage(-200, 100, 60), { coveredS: 0, silenceBeforeS: 0, silenceAfterS: 60 })
  const lines = videoTable([
    {
      video: 'fish/A.mp4',
      offsetS: 1.0176,
      anchor: 'ULID',
      coveredS: 1.94,
      videoDurationS: 2.96,
      made: 'fish/A-m.mp4',
    },
    {
      video: 'fish/B.mp4',
      offsetS: -2.4214,
      anchor: 'tracking CSV',
      coveredS: null,
      videoDurationS: null,
      made: 'command printed',
    },
  ])
  assert.equal(lines.length, 3)
  assert.match(lines[1], /^ {2}fish\/A\.mp4 +\+1\.018 s +ULID +1\.9 of 3\.0 s +fish\/A-m\.mp4$/)
  assert.match(lines[2], /^ {2}fish\/B\.mp4 +−2\.421 s +tracking CSV +— +command printed$/)
  assert.equal(lines[1].indexOf('ULID'), lines[2].indexOf('tracking CSV'), 'columns aligned')
  const usage = (argv, pattern) =>
    assert.throws(
      () => parseCommand(argv, 'linux'),
      (e) => e instanceof UsageError && pattern.test(e.message),
    )
  usage(['fish', '--all-videos', '--video', 'fish/A.mp4'], /--all-videos finds every recording .* give one of them/)
  usage(['fish', '--all-videos', '--muxed-out', 'x.mp4'], /leave --muxed-out out/)
  usage(['mux', 'a-sync.json', '--all-videos', '--video', 'fish/A.mp4'], /give one of them/)
  const cmd = parseCommand(['fish', '--all-videos'], 'linux')
  assert.equal(cmd.settings.allVideos, true)
  assert.equal(parseCommand(['mux', 'a-sync.json', '--no-all-videos'], 'linux').mux.given.allVideos, false)
})

test('several devices: names, one stream each in the mux plan (placed by its own first sample, named), the codec, levels, the record read back', async () => {
  const { recordingNames, muxPlan, muxCodecFor, statusLine, newSyncRecord, parseSyncRecord, audioFieldsOf } =
    await import('../dist/record-audio.mjs')
  assert.deepEqual(recordingNames('arena-audio', 1), {
    audioFiles: ['arena-audio.wav'],
    syncFile: 'arena-audio-sync.json',
  })
  assert.deepEqual(recordingNames('arena-audio', 2), {
    audioFiles: ['arena-audio-1.wav', 'arena-audio-2.wav'],
    syncFile: 'arena-audio-sync.json',
  })
  const plan = muxPlan({
    audioFile: '/lab/a-1.wav',
    videoFile: '/lab/v.mp4',
    muxedFile: '/lab/v-with-audio.mp4',
    sampleRate: 48000,
    channels: 1,
    offsetS: 0.5,
    videoDurationS: 10,
    title: 'hw:1',
    more: [{ audioFile: '/lab/a-2.wav', sampleRate: 96000, channels: 2, offsetS: -0.25, title: 'room mic' }],
  })
  assert.equal(plan.delaySamples, 24000)
  assert.deepEqual(
    plan.more.map((m) => [m.delaySamples, m.trimSamples]),
    [[0, 24000]],
  )
  const graph = plan.args[plan.args.indexOf('-filter_complex') + 1]
  assert.equal(
    graph,
    '[1:a:0]adelay=delays=24000S:all=1,apad=whole_len=480000,atrim=end_sample=480000[a0];' +
      '[2:a:0]atrim=start_sample=24000,asetpts=PTS-STARTPTS,apad=whole_len=960000,atrim=end_sample=960000[a1]',
  )
  const joined = plan.args.join(' ')
  assert.match(joined, /-i \/lab\/v\.mp4 -i \/lab\/a-1\.wav -i \/lab\/a-2\.wav /)
  assert.match(joined, /-map 0:v:0 -map \[a0\] -map \[a1\] -c:v copy /)
  assert.match(
    joined,
    /-c:a:0 aac -b:a:0 192k -metadata:s:a:0 handler_name=hw:1 -c:a:1 aac -b:a:1 192k -metadata:s:a:1 handler_name=room mic/,
  )
  const mkv = muxPlan({
    ...plan,
    audioFile: '/a.wav',
    videoFile: '/v.mp4',
    muxedFile: '/v.mkv',
    sampleRate: 48000,
    channels: 1,
    offsetS: 0,
    videoDurationS: 1,
    more: [{ audioFile: '/b.wav', sampleRate: 250000, channels: 1, offsetS: 0, title: 'bat' }],
  })
  assert.match(mkv.args.join(' '), /-c:a:1 flac -metadata:s:a:1 title=bat/)
  assert.equal(
    muxCodecFor([
      { sampleRate: 48000, channels: 1 },
      { sampleRate: 250000, channels: 1 },
    ]).container,
    'mkv',
  )
  assert.equal(
    muxCodecFor([
      { sampleRate: 48000, channels: 1 },
      { sampleRate: 96000, channels: 2 },
    ]).container,
    'mp4',
  )
  const line = statusLine(5, 2_000_000, [-20, -Infinity], false)
  assert.match(line, /^● 00:00:05 {2}2\.0 MB {2} +-20\.0 dBFS ▮{8} {2}\| +silence $/)

  const record = newSyncRecord({
    tool: 'record-audio',
    feedDir: null,
    audioFile: '/lab/a-1.wav',
    audioFormat: 'pulse',
    audioDevice: 'hw:1',
    audioSampleRate: 48000,
    audioChannels: 1,
    timing: {
      timesyncFile: null,
      videoStartEpochS: null,
      clockOffsetS: 0,
      cameraLatencyS: 0,
      driftFix: true,
      events: false,
      allVideos: false,
    },
  })
  const audios = [
    { ...audioFieldsOf(record), audioStartEpochS: 1795817200.25, audioFailed: null },
    {
      ...audioFieldsOf(record),
      audioFile: '/lab/a-2.wav',
      audioDevice: 'room',
      audioStartEpochS: 1795817200.75,
      audioFailed: 'ffmpeg was killed (SIGKILL)',
    },
  ]
  const back = parseSyncRecord(JSON.stringify({ ...record, audioStartEpochS: 1795817200.25, audios }))
  assert.deepEqual(
    back.audios.map((a) => [a.audioFile, a.audioDevice, a.audioStartEpochS, a.audioFailed]),
    [
      ['/lab/a-1.wav', 'hw:1', 1795817200.25, null],
      ['/lab/a-2.wav', 'room', 1795817200.75, 'ffmpeg was killed (SIGKILL)'],
    ],
  )
})

test('the build: Node versions, the stamp, and what a build does about an edited source', () => {
  assert.equal(OLDEST_NODE, '22.18.0')
  for (const old of ['v20.20.2', '22.17.9', '22.9.0', '21.7.3']) assert.equal(nodeIsTooOld(old), true, old)
  for (const ok of ['22.18.0', 'v22.23.3', '23.0.0', '24.21.0', '26.10.0']) assert.equal(nodeIsTooOld(ok), false, ok)
  const stripped = "#!/usr/bin/env node\nconst BUILT_FROM_SHA256 = ''\nconst x = 1\n"
  assert.equal(stampBuild(stripped, 'ab12'), "#!/usr/bin/env node\nconst BUILT_FROM_SHA256 = 'ab12'\nconst x = 1\n")
  assert.throws(() => stampBuild('const x = 1\n', 'ab12'), /no BUILT_FROM_SHA256/)
  // The packaged build was stamped with the source it was made from.
  const built = fs.readFileSync(new URL('../dist/record-audio.mjs', import.meta.url), 'utf8')
  const source = fs.readFileSync(new URL('../record-audio.mts', import.meta.url), 'utf8')
  assert.match(built, new RegExp(`^const BUILT_FROM_SHA256 = '${sha256(source)}'$`, 'm'))

  const dist = '/lab/record-audio/dist/record-audio.mjs'
  const src = '/lab/record-audio/record-audio.mts'
  assert.deepEqual(checkBuild(dist, 'aa', src, 'aa'), { kind: 'run-self' })
  assert.deepEqual(checkBuild(dist, 'aa', src, null), { kind: 'run-self' }, 'a build with no source beside it')
  assert.deepEqual(checkBuild(src, '', src, 'bb'), { kind: 'run-self' }, 'the source itself')
  assert.deepEqual(checkBuild(dist, 'aa', src, 'bb'), { kind: 'run-source', source: src })
  const cached = '/home/u/.npm/_npx/1f/node_modules/record-audio/record-audio.mts'
  const refused = checkBuild(cached.replace('record-audio.mts', 'dist/record-audio.mjs'), 'aa', cached, 'bb')
  assert.equal(refused.kind, 'refuse')
  assert.match(refused.line, /edited after its build, .* `record-audio init`/)
  const windows = 'C:\\Users\\u\\node_modules\\record-audio\\record-audio.mts'
  assert.equal(checkBuild('C:\\x\\dist\\record-audio.mjs', 'aa', windows, 'bb').kind, 'refuse')
})

test('camera latency: the video mode, the calibration file read (one clear line when malformed), kept measurements and their interval', async () => {
  const { videoModeOf, parseCalibration, keptLatency, withMeasurement, CALIBRATION_ABOUT } = await import(
    '../dist/record-audio.mjs'
  )
  assert.equal(videoModeOf({ width: 640, height: 480, fps: 30, codec: 'mpeg4' }), '640x480 30 fps mpeg4')
  assert.equal(videoModeOf({ width: 640, height: 480, fps: 30000 / 1001, codec: 'h264' }), '640x480 29.97 fps h264')
  assert.equal(videoModeOf({ width: null, height: 480, fps: 30, codec: 'mpeg4' }), null)
  assert.throws(() => parseCalibration('{'), /^Error: it is not JSON$/)
  assert.throws(() => parseCalibration('{"cams":[]}'), /no "cameras" list/)
  const key = { feedId: 'fish', audioDevice: 'mic', videoMode: '640x480 30 fps mpeg4', anchor: 'tracking-csv' }
  assert.throws(
    () => parseCalibration(JSON.stringify({ cameras: [{ ...key, anchor: 3 }] })),
    /cameras\[0\] has no "anchor"/,
  )
  const bad = { cameras: [{ ...key, measurements: [{ pairs: 10, medianS: '0.136', spreadS: 0.004 }] }] }
  assert.throws(() => parseCalibration(JSON.stringify(bad)), /cameras\[0\]\.measurements\[0\] has no "medianS" number/)
  assert.equal(keptLatency([]), null)
  const m1 = { date: '2026-12-07T10:00:00.000Z', pairs: 10, medianS: 0.136, spreadS: 0.004 }
  // One measurement: its median ± half its spread.
  const one = keptLatency([m1])
  assert.ok(Math.abs(one.latencyS - 0.136) < 1e-9 && Math.abs(one.uncertaintyS - 0.002) < 1e-9 && one.sessions === 1)
  // Two apart: the interval holding both, each ± half its spread.
  const m2 = { ...m1, medianS: 0.236, spreadS: 0.006 }
  const two = keptLatency([m1, m2])
  assert.ok(
    Math.abs(two.latencyS - (0.134 + 0.239) / 2) < 1e-9 && Math.abs(two.uncertaintyS - (0.239 - 0.134) / 2) < 1e-9,
  )
  const empty = { about: CALIBRATION_ABOUT, cameras: [] }
  const once = withMeasurement(empty, key, m1)
  assert.deepEqual(once.cameras, [{ ...key, measurements: [m1] }])
  assert.deepEqual(empty.cameras, [], 'the calibration given is not changed')
  const other = { ...key, videoMode: '1280x720 30 fps mpeg4' }
  const both = withMeasurement(withMeasurement(once, key, m2), other, m1)
  assert.deepEqual(
    both.cameras.map((c) => c.measurements.length),
    [2, 1],
  )
  // What is written reads back whole.
  assert.deepEqual(parseCalibration(JSON.stringify(both)), both)
  // One recording measured again (mux later --events) is still one session: its new verdict replaces the old.
  const a = { ...m1, video: '01ARYZ6S41TSV4RRFFQ69G5FAV.mp4' }
  const again = withMeasurement(withMeasurement(once, key, a), key, { ...a, medianS: 0.137 })
  assert.deepEqual(
    again.cameras[0].measurements.map((m) => [m.video ?? null, m.medianS]),
    [
      [null, 0.136],
      ['01ARYZ6S41TSV4RRFFQ69G5FAV.mp4', 0.137],
    ],
  )
  assert.deepEqual(parseCalibration(JSON.stringify(again)), again)
})

test('camera latency: measured from the events, re-checked against the kept ones, chosen (flag, kept, none)', async () => {
  const { measuredLatency, latencyMoved, chooseCameraLatency, keptLatency } = await import('../dist/record-audio.mjs')
  const date = new Date('2026-12-07T10:00:00Z')
  // The anchors put the sound 136 ms late (the video's start 136 ms late): that is the latency, over what was taken off.
  const m = measuredLatency(0, { medianS: -0.136, spreadS: 0.004, used: 10 }, 1, date)
  assert.deepEqual(m, { date: '2026-12-07T10:00:00.000Z', pairs: 10, medianS: 0.136, spreadS: 0.004 })
  assert.ok(
    Math.abs(measuredLatency(0.1, { medianS: -0.036, spreadS: 0.004, used: 10 }, 1, date).medianS - 0.136) < 1e-9,
  )
  assert.equal(measuredLatency(0, { medianS: null, spreadS: null, used: 0 }, 1, date), null)
  const kept = keptLatency([m]) // 136 ± 2 ms: the kept spread 4 ms
  const period = 1 / 30
  assert.equal(latencyMoved(null, m, period), null)
  assert.equal(latencyMoved(kept, { ...m, medianS: 0.136 + 0.004 + period - 0.001 }, period), null)
  const moved = latencyMoved(kept, { ...m, medianS: 0.236 }, period)
  assert.ok(Math.abs(moved - 0.1) < 1e-9, String(moved))
  assert.ok(latencyMoved(kept, { ...m, medianS: 0.09 }, period) < 0)
  assert.deepEqual(chooseCameraLatency({ flagS: 0.1, calibration: true, kept }), {
    latencyS: 0.1,
    uncertaintyS: null,
    source: 'flag',
    sessions: 0,
  })
  assert.equal(chooseCameraLatency({ flagS: null, calibration: true, kept }).source, 'calibration')
  assert.equal(chooseCameraLatency({ flagS: null, calibration: true, kept }).sessions, 1)
  assert.deepEqual(chooseCameraLatency({ flagS: null, calibration: false, kept }), {
    latencyS: 0,
    uncertaintyS: null,
    source: 'unmeasured',
    sessions: 0,
  })
  assert.equal(chooseCameraLatency({ flagS: null, calibration: true, kept: null }).source, 'unmeasured')
})

test('camera latency: the offset bounds hold every term; unmeasured, the latency and a frame only raise them; said as ± or +/−', async () => {
  const {
    offsetBounds,
    describeBounds,
    UNMEASURED_LATENCY_MAX_S,
    latencyNotes,
    measuredLatencyNote,
    EVENT_TIMING_FLOOR_S,
  } = await import('../dist/record-audio.mjs')
  const base = {
    offsetS: -7.109,
    eventsSpreadS: null,
    audioUncertaintyS: 0.002,
    videoUncertaintyS: 0.0015,
    cardClockS: 0.0005,
    framePeriodS: 1 / 30,
  }
  const near = (a, b) => Math.abs(a - b) < 1e-9
  const kept = offsetBounds({ ...base, latency: { source: 'calibration', uncertaintyS: 0.002 } })
  assert.ok(near(kept[0], -7.109 - 0.006) && near(kept[1], -7.109 + 0.006), String(kept))
  assert.equal(describeBounds(-7.109, kept), '± 6 ms')
  const none = offsetBounds({ ...base, latency: { source: 'unmeasured', uncertaintyS: null } })
  assert.ok(near(none[0], -7.109 - 0.004), String(none))
  assert.ok(near(none[1], -7.109 + 0.004 + UNMEASURED_LATENCY_MAX_S + 1 / 30), String(none))
  assert.equal(
    describeBounds(-7.109, none),
    `+${((0.004 + UNMEASURED_LATENCY_MAX_S + 1 / 30) * 1000).toFixed(0)}/−4 ms`,
  )
  const events = offsetBounds({ ...base, eventsSpreadS: 0.003, latency: { source: 'events', uncertaintyS: 0.0015 } })
  assert.ok(near(events[0], -7.112) && near(events[1], -7.106), String(events))
  // Pairs that all agree to the click block (spread 0, seen beside the real TracktorLive, the truth 0.2 ms
  // away) still hold the truth only to one event's timing.
  const agreeing = offsetBounds({ ...base, eventsSpreadS: 0, latency: { source: 'events', uncertaintyS: 0 } })
  assert.ok(near(agreeing[0], -7.109 - EVENT_TIMING_FLOOR_S) && near(agreeing[1], -7.109 + EVENT_TIMING_FLOOR_S))
  assert.ok(EVENT_TIMING_FLOOR_S > 0)
  // What the summary says: kept in a few words; unmeasured once per mode, with how to measure it.
  const [keptNote] = latencyNotes(
    { latencyS: 0.136, uncertaintyS: 0.002, source: 'calibration', sessions: 3 },
    { file: 'record-audio-calibration.json', mode: '640x480 30 fps mpeg4', others: [] },
  )
  assert.equal(keptNote.text, '  Camera latency 136 ± 2 ms kept from 3 sessions (record-audio-calibration.json).')
  const [unmeasured] = latencyNotes(
    { latencyS: 0, uncertaintyS: null, source: 'unmeasured', sessions: 0 },
    { file: 'record-audio-calibration.json', mode: '1280x720 30 fps mpeg4', others: ['640x480 30 fps mpeg4'] },
  )
  assert.match(unmeasured.text, /unmeasured for 1280x720 30 fps mpeg4 \(.* has 640x480 30 fps mpeg4: another mode's/)
  assert.match(unmeasured.short, /not in the figure; measure it once with --events/)
  assert.equal(unmeasured.key, 'latency-unmeasured') // once per run, whatever the videos
  assert.equal(unmeasured.kind, 'advice')
  assert.deepEqual(latencyNotes({ latencyS: 0.136, uncertaintyS: 0.002, source: 'events', sessions: 1 }, {}), [])
  const m = { date: '', pairs: 10, medianS: 0.2361, spreadS: 0.003 }
  const before = { latencyS: 0.136, uncertaintyS: 0.002, sessions: 3 }
  const after = { latencyS: 0.186, uncertaintyS: 0.052, sessions: 4 }
  const moved = measuredLatencyNote(m, {
    file: 'c.json',
    keptBefore: before,
    movedS: 0.1001,
    keptAfter: after,
    notKept: null,
  })
  assert.equal(moved.kind, 'warning')
  assert.match(
    moved.text,
    /236\.1 ms .*\+100 ms from the 136 ± 2 ms kept: the camera or its settings changed.*186 ± 52 ms \(4 sessions\)/,
  )
  const fine = measuredLatencyNote(m, {
    file: 'c.json',
    keptBefore: null,
    movedS: null,
    keptAfter: after,
    notKept: null,
  })
  assert.equal(fine.kind, 'plain')
  assert.match(fine.text, /kept in c\.json \(186 ± 52 ms from 4 sessions\)/)
})

test('openRegular / readRegular / isRegularFile: a FIFO or a folder is never opened to read (it would block), a file is, reads bounded', () => {
  const dir = tempDir()
  const fifo = path.join(dir, 'f.csv')
  assert.equal(run('mkfifo', [fifo]).status, 0)
  const file = path.join(dir, 'a.csv')
  fs.writeFileSync(file, '0123456789')
  assert.equal(openRegular(fifo), null)
  assert.equal(readRegular(fifo, 100), null)
  assert.equal(isRegularFile(fifo), false)
  assert.equal(isRegularFile(dir), false)
  assert.equal(isRegularFile(path.join(dir, 'none')), false)
  assert.equal(isRegularFile(file), true)
  assert.equal(readRegular(file, 4), '0123')
  assert.equal(readRegular(file, 100), '0123456789')
  const fd = openRegular(file)
  assert.equal(typeof fd, 'number')
  fs.closeSync(fd)
})

test('muxLauncher: the mux ffmpeg gets parent-death SIGKILL through setpriv (it dies with a killed tool), nothing without setpriv', () => {
  assert.deepEqual(muxLauncher('/usr/bin/setpriv'), ['/usr/bin/setpriv', '--pdeathsig', 'KILL', '--'])
  assert.deepEqual(muxLauncher(null), [])
})

test('syncRangeProblem: a sync file number no recording could have written is named (rate 0, NaN-like, a fraction of a channel); sane ones pass', () => {
  const ok = { audioSampleRate: 48000, audioChannels: 2, audioStartEpochS: 1.8e9, clockOffsetS: -0.5 }
  assert.equal(syncRangeProblem(ok), null)
  assert.equal(syncRangeProblem({ audioSampleRate: 48000 }), null)
  assert.match(syncRangeProblem({ ...ok, audioSampleRate: 0 }), /its audioSampleRate is 0, outside/)
  assert.match(syncRangeProblem({ ...ok, audioSampleRate: 44100.5 }), /audioSampleRate is 44100\.5/)
  assert.match(syncRangeProblem({ ...ok, audioChannels: 1.5 }), /audioChannels/)
  assert.match(syncRangeProblem({ ...ok, audioStartEpochS: 5 }), /audioStartEpochS is 5/)
  assert.match(syncRangeProblem({ ...ok, clockOffsetS: '3' }), /clockOffsetS is "3"/)
})

test('notMp4Reason: an mp4 box first is a video that may still be written; text, or under 8 bytes for EMPTY_VIDEO_S, is none', async () => {
  const { notMp4Reason, EMPTY_VIDEO_S } = await import('../dist/record-audio.mjs')
  const box = (type) => Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from(type, 'latin1')])
  assert.equal(notMp4Reason(box('ftyp'), 4096, 60), null)
  assert.equal(notMp4Reason(box('mdat'), 4096, 60), null)
  assert.match(notMp4Reason(Buffer.from('hello world'), 11, 0), /no mp4 box: "o wo"/)
  assert.equal(notMp4Reason(Buffer.alloc(0), 0, EMPTY_VIDEO_S - 1), null, 'a writer just opened it')
  assert.match(notMp4Reason(Buffer.alloc(0), 0, EMPTY_VIDEO_S), /holds 0 bytes, unchanged for 5 s/)
})

test('unfinishedMuxes: only the video’s own .partial-<PID> muxes, each with its PID', async () => {
  const { unfinishedMuxes } = await import('../dist/record-audio.mjs')
  const names = [
    'V.mp4',
    'V-with-audio.mp4',
    'V-with-audio.partial-123.mp4',
    'V-with-audio-2.partial-9.mkv',
    'W-with-audio.partial-5.mp4',
  ]
  assert.deepEqual(unfinishedMuxes(names, 'V'), [
    { name: 'V-with-audio.partial-123.mp4', pid: 123 },
    { name: 'V-with-audio-2.partial-9.mkv', pid: 9 },
  ])
})

test('syncRangeProblem: a video field, the timing block and a device part are named with their path', async () => {
  const { syncRangeProblem } = await import('../dist/record-audio.mjs')
  assert.equal(syncRangeProblem({ audioSampleRate: 48000, offsetS: 0.5, timing: { clockOffsetS: 0 } }), null)
  assert.match(
    syncRangeProblem({ videos: [{ offsetS: 1 }, { videoNominalFps: 0 }] }),
    /its videos\[1\]\.videoNominalFps is 0/,
  )
  assert.match(syncRangeProblem({ timing: { cameraLatencyS: -1 } }), /its timing\.cameraLatencyS is -1, outside 0…10/)
  assert.match(
    syncRangeProblem({ audios: [{ audioSampleRate: 48000 }, { audioChannels: 0 }] }),
    /its audios\[1\]\.audioChannels is 0/,
  )
  assert.match(syncRangeProblem({ audioClockRatio: '1' }), /its audioClockRatio is "1"/)
})

test("camera latency: a kept one carries its session's anchors' ±; past 1 s a measurement is the anchors' error, never kept", async () => {
  const { keptLatency, parseCalibration, MAX_CAMERA_LATENCY_S } = await import('../dist/record-audio.mjs')
  // Measured against anchors known within 60 ms (a stamp in doubt): applied later, it is no surer than that.
  const m = { date: '2026-12-07T10:00:00.000Z', pairs: 10, medianS: 0.076, spreadS: 0.002, anchorUncertaintyS: 0.06 }
  const kept = keptLatency([m])
  assert.ok(Math.abs(kept.uncertaintyS - 0.061) < 1e-9, String(kept.uncertaintyS))
  assert.ok(
    kept.latencyS - kept.uncertaintyS <= 0.016 && kept.latencyS + kept.uncertaintyS >= 0.136,
    'the truth inside',
  )
  const key = { feedId: 'f', audioDevice: 'mic', videoMode: '320x240 30 fps mpeg4', anchor: 'tracking-csv' }
  const read = parseCalibration(JSON.stringify({ cameras: [{ ...key, measurements: [m] }] }))
  assert.equal(read.cameras[0].measurements[0].anchorUncertaintyS, 0.06, 'kept in the file')
  assert.equal(MAX_CAMERA_LATENCY_S, 1)
})

test("offsetBounds: the ULID anchor's bounds hold its buffered start (up to ULID_BUFFERED_MAX_S above)", async () => {
  const { offsetBounds, ULID_BUFFERED_MAX_S } = await import('../dist/record-audio.mjs')
  const b = {
    offsetS: 1,
    eventsSpreadS: null,
    audioUncertaintyS: 0.002,
    videoUncertaintyS: 1 / 30,
    cardClockS: 0,
    latency: { source: 'calibration', uncertaintyS: 0.001 },
    framePeriodS: 1 / 30,
  }
  const [, plain] = offsetBounds(b)
  const [low, high] = offsetBounds({ ...b, bufferedStartS: ULID_BUFFERED_MAX_S })
  assert.ok(Math.abs(high - plain - 0.7) < 1e-9 && ULID_BUFFERED_MAX_S === 0.7, String(high))
  // A first frame taken 0.364 s before the ULID (the bench's ULID-alone session) lies inside.
  assert.ok(low <= 1.364 && 1.364 <= high)
})

test('offsetBounds: a video drift left uncorrected (no -itsscale) widens the bounds by its error at the end', async () => {
  const { offsetBounds, driftLeftS } = await import('../dist/record-audio.mjs')
  // A camera 0.4 % slow over 10 min, --no-drift-fix: 2.4 s apart at the end.
  assert.ok(Math.abs(driftLeftS({ driftAtEndMs: -2400, itsscale: null }) - 2.4) < 1e-9)
  assert.equal(driftLeftS({ driftAtEndMs: -2400, itsscale: 0.996 }), 0, 'corrected')
  assert.equal(driftLeftS({ driftAtEndMs: null, itsscale: null }), 0)
  const b = {
    offsetS: 1,
    eventsSpreadS: null,
    audioUncertaintyS: 0.002,
    videoUncertaintyS: 0.002,
    cardClockS: 0,
    latency: { source: 'calibration', uncertaintyS: 0.002 },
    framePeriodS: 1 / 30,
  }
  const [low, high] = offsetBounds({ ...b, driftLeftS: 2.4 })
  assert.ok(Math.abs(low - (1 - 2.406)) < 1e-9 && Math.abs(high - (1 + 2.406)) < 1e-9, `${low} ${high}`)
})
