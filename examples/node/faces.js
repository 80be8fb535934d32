#!/usr/bin/env node
// Faces from Triton's in-server `faces` model over gRPC, from Node: @grpc/grpc-js and
// Triton's published KServe v2 service definition (grpc_service.proto, model_config.proto
// from github.com/triton-inference-server/common, protobuf/, tag r24.10). Nothing of
// facegate runs here: the image's bytes go to Triton as they are, faces come back.
//
//   node faces.js --protos DIR [options] IMAGE...        DIR holds the two .proto files
//   node faces.js --descriptors FILE [options] IMAGE...  a FileDescriptorSet of them
//
// Options: --url HOST:PORT (default 127.0.0.1:8001), --det-sizes 640|128,640,
// --threshold 0.5, --max-faces N, --min-size PX, --no-embed, --timeout-s 30,
// --concurrency N (requests in flight, default 1: one after the other; Triton's dynamic
// batcher groups concurrent ones).
// Prints one JSON line per image, in order: {"image", "width", "height", "faces": [{"bbox",
// "score", "landmarks", "embedding"?, "embedding_norm"?}]} or {"image", "error": {"code",
// "message"}}; exits 0 when every image was answered, 1 when any was refused, 2 on bad usage.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

function usage(message) {
  process.stderr.write(`${message}\nusage: node faces.js (--protos DIR | --descriptors FILE) [--url HOST:PORT] [--det-sizes 128,640] [--threshold 0.5] [--max-faces N] [--min-size PX] [--no-embed] [--concurrency N] IMAGE...\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { url: "127.0.0.1:8001", parameters: {}, images: [], timeoutS: 30, concurrency: 1 };
  const value = (i) => (i + 1 < argv.length ? argv[i + 1] : usage(`${argv[i]} needs a value`));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--protos") args.protos = value(i++);
    else if (arg === "--descriptors") args.descriptors = value(i++);
    else if (arg === "--url") args.url = value(i++);
    else if (arg === "--timeout-s") args.timeoutS = Number(value(i++));
    else if (arg === "--concurrency") args.concurrency = Math.max(1, Number(value(i++)) || 1);
    else if (arg === "--det-sizes") args.parameters.det_sizes = { string_param: value(i++) };
    else if (arg === "--threshold") args.parameters.threshold = { double_param: Number(value(i++)) };
    else if (arg === "--max-faces") args.parameters.max_faces = { int64_param: Number(value(i++)) };
    else if (arg === "--min-size") args.parameters.min_size = { double_param: Number(value(i++)) };
    else if (arg === "--no-embed") args.parameters.embed = { bool_param: false };
    else if (arg === "--help" || arg === "-h") usage("Faces from Triton's `faces` model.");
    else if (arg.startsWith("--")) usage(`unknown option ${arg}`);
    else args.images.push(arg);
  }
  if (!args.protos === !args.descriptors) usage("give one of --protos DIR or --descriptors FILE");
  if (args.images.length === 0) usage("no image given");
  return args;
}

function loadService(args) {
  const definition = args.descriptors
    ? protoLoader.loadFileDescriptorSetFromBuffer(fs.readFileSync(args.descriptors), LOADER_OPTIONS)
    : protoLoader.loadSync(path.join(args.protos, "grpc_service.proto"), {
        ...LOADER_OPTIONS,
        includeDirs: [args.protos],
      });
  return grpc.loadPackageDefinition(definition).inference.GRPCInferenceService;
}

// protobufjs reads a map field of a FileDescriptorSet as the repeated {key, value} entries
// it is on the wire; from .proto text it is a plain object.
function parameterMap(args) {
  if (!args.descriptors) return args.parameters;
  return Object.entries(args.parameters).map(([key, value]) => ({ key, value }));
}

// KServe v2 BYTES in raw_input_contents: each element is its length (uint32, little-endian),
// then its bytes.
function bytesTensor(data) {
  const length = Buffer.alloc(4);
  length.writeUInt32LE(data.length);
  return Buffer.concat([length, data]);
}

// Raw output bytes -> a plain array of numbers (copied: the buffer may be unaligned).
function numbers(datatype, raw) {
  const bytes = Uint8Array.from(raw);
  if (datatype === "FP32") return Array.from(new Float32Array(bytes.buffer));
  if (datatype === "INT32") return Array.from(new Int32Array(bytes.buffer));
  throw new Error(`unexpected output datatype ${datatype}`);
}

function rows(flat, width) {
  const out = [];
  for (let i = 0; i < flat.length; i += width) out.push(flat.slice(i, i + width));
  return out;
}

function facesOf(response) {
  const outputs = {};
  response.outputs.forEach((output, i) => {
    outputs[output.name] = numbers(output.datatype, response.raw_output_contents[i]);
  });
  const [width, height] = outputs.IMAGE_SIZE;
  const boxes = rows(outputs.BOXES, 4);
  const landmarks = rows(outputs.LANDMARKS, 10).map((kps) => rows(kps, 2));
  const embeddings = outputs.EMBEDDINGS ? rows(outputs.EMBEDDINGS, 512) : null;
  const faces = boxes.map((bbox, i) => {
    const face = { bbox, score: outputs.SCORES[i], landmarks: landmarks[i] };
    if (embeddings) {
      face.embedding = embeddings[i];
      face.embedding_norm = outputs.EMBEDDING_NORMS[i];
    }
    return face;
  });
  return { width, height, faces };
}

function infer(client, image, parameters, timeoutS) {
  const request = {
    model_name: "faces",
    inputs: [{ name: "IMAGE", datatype: "BYTES", shape: [1, 1] }],
    parameters,
    raw_input_contents: [bytesTensor(image)],
  };
  return new Promise((resolve) => {
    const deadline = new Date(Date.now() + timeoutS * 1000);
    client.ModelInfer(request, { deadline }, (error, response) => {
      if (error) {
        const code = Object.keys(grpc.status).find((name) => grpc.status[name] === error.code);
        resolve({ error: { code, message: error.details } });
      } else {
        resolve(facesOf(response));
      }
    });
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const Service = loadService(args);
  const client = new Service(args.url, grpc.credentials.createInsecure(), {
    "grpc.max_send_message_length": -1,
    "grpc.max_receive_message_length": -1,
  });
  const parameters = parameterMap(args);
  const answers = new Array(args.images.length);
  let next = 0;
  const worker = async () => {
    while (next < args.images.length) {
      const i = next++;
      answers[i] = await infer(client, fs.readFileSync(args.images[i]), parameters, args.timeoutS);
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, worker));
  let refused = 0;
  answers.forEach((answer, i) => {
    if (answer.error) refused += 1;
    process.stdout.write(`${JSON.stringify({ image: args.images[i], ...answer })}\n`);
  });
  client.close();
  process.exitCode = refused ? 1 : 0;
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
