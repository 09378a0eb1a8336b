import Foundation
import Tensor

/// What a PyTorch checkpoint holds, as plain values: dicts in their order (state dicts, nested
/// `{"state_dict": ...}` checkpoints, optimizer states keyed by ints), lists (tuples and sets
/// too), tensors, and the leaves Python had (int, float, str, bytes, bool, None).
public indirect enum TorchValue {
  case none, bool(Bool), int(Int), float(Double), string(String), bytes([UInt8])
  case list([TorchValue]), dict([(key: TorchValue, value: TorchValue)]), tensor(Tensor)
}

/// PyTorch's checkpoints (`.pth`, `.pt`, `.bin`: what torch.save writes), read the way
/// `torch.load(weights_only=True)` reads them and without running any code, in both formats
/// (torch/serialization.py: `_load` and `_legacy_load`):
///
/// - zip (torch >= 1.6): `<archive>/data.pkl` is the pickle, `<archive>/data/<key>` each
///   storage's raw bytes, `<archive>/byteorder` their byte order (little when absent);
/// - legacy (`_use_new_zipfile_serialization=False`): consecutive pickles in one stream (the
///   magic number 0x1950a86a20f9469cfc6c, the protocol version 1001, a sys_info dict, the
///   object, the list of storage keys), then per key an 8-byte element count and the elements.
///
/// The pickle is read by `Unpickler`; the only globals accepted are those a state dict needs
/// (torch/_weights_only_unpickler.py's allowed set, narrowed): collections.OrderedDict,
/// torch._utils' tensor and parameter rebuilders, torch.*Storage, torch's dtypes, torch.Size,
/// torch.device, torch.nn.Parameter, and the builtins that rebuild bytes and sets. Anything
/// else (os.system, builtins.eval, a model's class) is an error naming it. Tensors are rebuilt
/// from their storage, offset, size and stride (views, shared storages, transposes) after
/// checking they stay inside the storage, and converted: float32 stays float32, float16 and
/// bfloat16 become float32, float64, integers and bool become float64.
public enum TorchFiles {
  /// The legacy format's magic number as the little-endian bytes of its LONG1 (torch's MAGIC_NUMBER).
  static let magic: [UInt8] = [0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]
  static let legacyProtocolVersion = 1001

  public enum Format: Equatable { case zip, legacy }

  /// Which of torch's formats `path` is in, or nil: a zip with an entry ".../data.pkl" (or a
  /// damaged zip named .pth/.pt/.bin/.ckpt), or a stream whose first pickle (PROTO 0x80 first)
  /// is the legacy magic number.
  public static func format(of path: String) -> Format? {
    let head = fileHead(path, count: 64)
    if isLegacy(head) { return .legacy }
    guard head.starts(with: [0x50, 0x4B]) else { return nil }
    guard let zip = try? ZipReader(path, what: "tensor.load") else {
      // A damaged zip named like a checkpoint is reported as one (loadZip says what is wrong).
      return ["pth", "pt", "bin", "ckpt"].contains((path as NSString).pathExtension.lowercased()) ? .zip : nil
    }
    return dataPickle(zip) != nil ? .zip : nil
  }

  /// True when `head` opens with PROTO and the magic number's LONG1 within its first pickle, or
  /// with the magic number as protocol 0/1's text LONG.
  static func isLegacy(_ head: [UInt8]) -> Bool {
    if head.starts(with: Array("L119547037146038801333356L\n".utf8)) { return true }
    let needle: [UInt8] = [0x8A, 0x0A] + magic
    guard head.first == 0x80, head.count >= needle.count else { return false }
    let last = Swift.min(head.count, 32) - needle.count
    guard last >= 0 else { return false }
    return (0...last).contains { Array(head[$0..<($0 + needle.count)]) == needle }
  }

  /// The archive's pickle: the entry "<archive>/data.pkl" directly under a top folder.
  static func dataPickle(_ zip: ZipReader) -> ZipReader.Entry? {
    zip.entries.first { $0.name.hasSuffix("/data.pkl") && $0.name.filter { $0 == "/" }.count == 1 }
  }

  /// Everything the checkpoint at `path` holds (the object torch.save was given); `what` starts
  /// every error ("tensor.load: 'x.pth' uses the global os.system, ...").
  public static func load(_ path: String, what: String = "tensor.load") throws -> TorchValue {
    guard let format = format(of: path) else {
      throw TensorError("\(what): '\(path)' is not a PyTorch checkpoint (neither a zip holding data.pkl nor torch's legacy stream)")
    }
    return try load(path, as: format, what: what)
  }

  /// The same, for a file `format(of:)` has already told apart.
  public static func load(_ path: String, as format: Format, what: String = "tensor.load") throws -> TorchValue {
    let label = "\(what): '\(path)'"
    switch format {
    case .zip: return try loadZip(path, what: what, label: label)
    case .legacy: return try loadLegacy(path, what: what, label: label)
    }
  }

  static func loadZip(_ path: String, what: String, label: String) throws -> TorchValue {
    let zip = try ZipReader(path, what: what)
    guard let entry = dataPickle(zip) else { throw TensorError("\(label) is a zip without <archive>/data.pkl") }
    let prefix = String(entry.name.dropLast("data.pkl".count))
    if zip.entries.contains(where: { $0.name.hasPrefix(prefix + "code/") }) {
      throw TensorError("\(label) is a TorchScript archive (torch.jit.save), not a state dict; save its state_dict() with torch.save")
    }
    var bigEndian = false
    if let order = zip.entry(named: prefix + "byteorder") {
      let text = String(decoding: try zip.read(order, limit: 64, what: what), as: UTF8.self)
      guard text == "little" || text == "big" else { throw TensorError("\(label) declares the byte order '\(text.prefix(20))'") }
      bigEndian = text == "big"
    }
    let pickle = try zip.read(entry, limit: MemoryAccounting.maxAllocationBytes, what: what)
    // each pickled value (2 bytes for a small int) becomes a PickleValue, a TorchValue and a Lua value
    try Storage.checkAllocatable(count: pickle.count, elementBytes: 64, what: "\(label)'s unpickled values")
    let arena = PickleArena()
    let resolver = TorchResolver(label: label, arena: arena)
    return try withExtendedLifetime(arena) {
      let root = try pickle.withUnsafeBytes { buffer -> PickleValue in
        var unpickler = Unpickler(buffer, at: 0, label: label, part: entry.name, arena: arena, resolver: resolver)
        return try unpickler.load()
      }
      try resolver.checkMemory()
      let entries = Dictionary(zip.entries.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
      for storage in resolver.storages where !storage.tensors.isEmpty {
        let name = prefix + "data/" + storage.key
        guard let e = entries[name] else { throw TensorError("\(label) has no entry '\(name)' for storage '\(storage.key)'") }
        guard e.size == storage.nbytes else {
          throw TensorError("\(label): storage '\(storage.key)' holds \(e.size) bytes, but its tensors declare \(storage.numel) "
                            + "elements of \(storage.dtype.rawValue) (\(storage.nbytes) bytes); it is corrupt")
        }
        let bytes = try zip.read(e, limit: MemoryAccounting.maxAllocationBytes, what: what)
        try bytes.withUnsafeBytes { try resolver.materialize(storage, $0, bigEndian: bigEndian) }
      }
      var converter = TorchValueConverter(label: label)
      return try converter.convert(root, depth: 0)
    }
  }

  static func loadLegacy(_ path: String, what: String, label: String) throws -> TorchValue {
    let data = try readRegularFile(path, what: what)
    let arena = PickleArena()
    let resolver = TorchResolver(label: label, arena: arena)
    return try withExtendedLifetime(arena) {
      try data.withUnsafeBytes { buffer -> TorchValue in
        var at = 0, budget = Unpickler.maxValues
        func next(_ part: String) throws -> PickleValue {
          var u = Unpickler(buffer, at: at, label: label, part: part, arena: arena, resolver: resolver, budget: budget)
          defer { at = u.position; budget = u.remainingBudget }
          return try u.load()
        }
        let first = try next("the magic number pickle")
        // binary (LONG1, protocols 2+) or decimal text (LONG, protocols 0 and 1)
        let isMagic: Bool
        switch first {
        case .bigInt(let m): isMagic = m == magic
        case .bigDecimal(let t): isMagic = t == "119547037146038801333356"   // 0x1950a86a20f9469cfc6c
        default: isMagic = false
        }
        guard isMagic else {
          throw TensorError("\(label) does not start with torch's magic number; it is not a legacy PyTorch checkpoint")
        }
        let version = try next("the protocol version pickle")
        guard version.int == legacyProtocolVersion else {
          throw TensorError("\(label) has serialization protocol \(version.int.map(String.init) ?? version.kind); 1001 is read")
        }
        var bigEndian = false
        if case .dict(let info) = try next("the sys_info pickle"),
           let little = info.pairs.first(where: { $0.key.text == "little_endian" })?.value, case .bool(let b) = little {
          bigEndian = !b
        }
        let root = try next("the object pickle")
        let keys = try next("the storage keys pickle")
        try resolver.checkMemory()
        try readLegacyStorages(buffer, at: at, keys: keys, resolver: resolver, bigEndian: bigEndian, label: label)
        var converter = TorchValueConverter(label: label)
        return try converter.convert(root, depth: 0)
      }
    }
  }

  /// The legacy stream's storages, in the order of the keys list: each an 8-byte element count
  /// (checked against what the pickle declared) and the elements.
  static func readLegacyStorages(_ buffer: UnsafeRawBufferPointer, at start: Int, keys: PickleValue, resolver: TorchResolver,
                                 bigEndian: Bool, label: String) throws {
    guard let items = keys.items else { throw TensorError("\(label): the storage keys are \(keys.kind), not a list; it is corrupt") }
    var at = start, loaded = Set<String>()
    for item in items {
      guard let key = item.text ?? item.int.map(String.init), let storage = resolver.storage(key) else {
        throw TensorError("\(label) lists data for a storage (\(item.text ?? item.kind)) that no tensor uses; it is corrupt")
      }
      guard loaded.insert(key).inserted else { throw TensorError("\(label) lists storage '\(key)' twice; it is corrupt") }
      guard buffer.count - at >= 8 else {
        throw TensorError("\(label) is truncated: it ends at byte \(buffer.count), before the data of storage '\(key)'")
      }
      var raw: UInt64 = 0
      for k in 0..<8 { raw |= UInt64(buffer[at + k]) << (8 * UInt64(k)) }
      let count = bigEndian ? raw.byteSwapped : raw
      guard count == UInt64(storage.numel) else {
        throw TensorError("\(label): storage '\(key)' holds \(count) elements, but its tensors declare \(storage.numel); it is corrupt")
      }
      guard buffer.count - at - 8 >= storage.nbytes else {
        throw TensorError("\(label) is truncated: storage '\(key)' needs \(storage.nbytes) bytes at byte \(at + 8), "
                          + "the file ends at \(buffer.count)")
      }
      try resolver.materialize(storage, UnsafeRawBufferPointer(rebasing: buffer[(at + 8)..<(at + 8 + storage.nbytes)]),
                               bigEndian: bigEndian)
      at += 8 + storage.nbytes
    }
    if let missing = resolver.storages.first(where: { !$0.tensors.isEmpty && !loaded.contains($0.key) }) {
      throw TensorError("\(label) has no data for storage '\(missing.key)'; it is corrupt")
    }
  }
}

/// Element types of torch's storages and dtypes (torch/storage.py's FloatStorage... and torch.float32...).
enum TorchDType: String {
  case float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, uint16, uint32, uint64, bool

  var size: Int {
    switch self {
    case .float64, .int64, .uint64: return 8
    case .float32, .int32, .uint32: return 4
    case .float16, .bfloat16, .int16, .uint16: return 2
    case .int8, .uint8, .bool: return 1
    }
  }

  /// float32, float16 and bfloat16 become float32 tensors; the rest float64.
  var outputsFloat32: Bool { self == .float32 || self == .float16 || self == .bfloat16 }

  /// The typed storage classes (torch.FloatStorage, ...); UntypedStorage holds bytes.
  static let storages: [String: TorchDType] = [
    "FloatStorage": .float32, "DoubleStorage": .float64, "HalfStorage": .float16, "BFloat16Storage": .bfloat16,
    "LongStorage": .int64, "IntStorage": .int32, "ShortStorage": .int16, "CharStorage": .int8, "ByteStorage": .uint8,
    "BoolStorage": .bool, "UntypedStorage": .uint8,
  ]
}

/// One storage of the checkpoint (a zip entry, or a block of the legacy stream) and the tensors
/// to be read from it.
final class TorchStorage {
  let key: String
  let dtype: TorchDType
  let numel: Int, nbytes: Int
  var tensors: [TorchPendingTensor] = []
  init(key: String, dtype: TorchDType, numel: Int, nbytes: Int) {
    self.key = key; self.dtype = dtype; self.numel = numel; self.nbytes = nbytes
  }
}

/// What a persistent id stands for: a typed view of (part of) a storage's bytes.
final class TorchStorageRef {
  let storage: TorchStorage
  let dtype: TorchDType
  let byteOffset: Int, nbytes: Int
  init(_ storage: TorchStorage, dtype: TorchDType, byteOffset: Int, nbytes: Int) {
    self.storage = storage; self.dtype = dtype; self.byteOffset = byteOffset; self.nbytes = nbytes
  }
}

/// A tensor the pickle rebuilt (`_rebuild_tensor_v2(storage, offset, size, stride, ...)`),
/// made once its storage's bytes are read.
final class TorchPendingTensor {
  let ref: TorchStorageRef
  let dtype: TorchDType
  let offset: Int, size: [Int], stride: [Int], numel: Int
  /// Elements of the storage from the first one the tensor reads to the last (0 when empty).
  let span: Int
  var tensor: Tensor?
  init(ref: TorchStorageRef, dtype: TorchDType, offset: Int, size: [Int], stride: [Int], numel: Int, span: Int) {
    self.ref = ref; self.dtype = dtype; self.offset = offset; self.size = size; self.stride = stride; self.numel = numel
    self.span = span
  }
  /// A tensor that reads some elements more than once (stride 0: an expanded view) is made as a
  /// view of its span, as PyTorch keeps it: memory in proportion to the file, not the shape.
  var staysView: Bool { numel > span }
  /// Elements the tensor takes in memory.
  var elementsHeld: Int { Swift.min(numel, span) }
}

/// Turns the unpickled objects into `TorchValue`s; depth and the count of values (shared
/// references counted each time they are reached) are bounded, so a cyclic or exponentially
/// shared pickle is an error, not a hang.
struct TorchValueConverter {
  static let maxDepth = 100, maxValues = 10_000_000
  let label: String
  var values = 0

  mutating func convert(_ v: PickleValue, depth: Int) throws -> TorchValue {
    values += 1
    guard values <= TorchValueConverter.maxValues else {
      throw TensorError("\(label) holds more than \(TorchValueConverter.maxValues) values once shared references are expanded; refused")
    }
    guard depth <= TorchValueConverter.maxDepth else {
      throw TensorError("\(label) nests values more than \(TorchValueConverter.maxDepth) deep (or holds a list that contains itself); "
                        + "refused")
    }
    switch v {
    case .none: return .none
    case .bool(let b): return .bool(b)
    case .int(let i): return .int(i)
    case .bigInt(let b): return .float(TorchValueConverter.double(b))
    case .bigDecimal(let t): return .float(Double(t) ?? .nan)
    case .float(let d): return .float(d)
    case .string(let s): return .string(s)
    case .bytes(let b): return .bytes(b)
    case .tuple(let l), .list(let l): return .list(try l.items.map { try convert($0, depth: depth + 1) })
    case .dict(let d): return .dict(try d.pairs.map { (try convert($0.key, depth: depth + 1), try convert($0.value, depth: depth + 1)) })
    case .global(let m, let n): return .string("\(m).\(n)")
    case .object(let o):
      if let t = o as? TorchPendingTensor, let x = t.tensor { return .tensor(x) }
      throw TensorError("\(label) holds a bare storage where a tensor or a value was expected; it is not a state dict")
    }
  }

  /// A two's-complement little-endian integer, to the nearest double.
  static func double(_ b: [UInt8]) -> Double {
    var v = 0.0
    for x in b.reversed() { v = v * 256 + Double(x) }
    if let last = b.last, last & 0x80 != 0 { v -= Foundation.pow(2.0, Double(8 * b.count)) }
    return v
  }
}

/// What torch's pickles may name and call (torch/_weights_only_unpickler.py's `_get_allowed_globals`,
/// narrowed to what a state dict holds), and the storages and tensors they stand for.
final class TorchResolver: PickleResolver {
  let label: String
  let arena: PickleArena
  private(set) var storages: [TorchStorage] = []
  private var byKey: [String: TorchStorage] = [:]

  static let rebuilders: Set<String> = [
    "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
  ]
  static let callables: Set<String> = rebuilders.union([
    "collections.OrderedDict", "torch._tensor._rebuild_from_type_v2", "torch.nn.parameter.Parameter", "torch.Tensor",
    "torch.Size", "torch.device", "_codecs.encode", "builtins.set", "builtins.frozenset", "builtins.bytearray",
  ])

  /// torch's other dtypes (torch.complex64, torch.float8_e4m3fn, torch.qint8, torch.uint4, ...), by prefix.
  static let unreadDTypes = ["float8", "float4", "complex", "cfloat", "cdouble", "chalf", "qint", "quint", "uint", "int", "bits"]

  init(label: String, arena: PickleArena) { self.label = label; self.arena = arena }

  /// A storage and its tensors refer to each other (tensor -> view -> storage -> tensors): the
  /// cycle is broken here, so the tensors are freed once Lua lets go of them.
  deinit { for s in storages { s.tensors = [] } }

  func storage(_ key: String) -> TorchStorage? { byKey[key] }

  func global(_ module: String, _ name: String) throws -> PickleValue {
    let full = "\(module).\(name)"
    if TorchResolver.callables.contains(full) { return .global(module, name) }
    if module == "torch" || module == "torch.cuda" || full == "torch.storage.UntypedStorage", name.hasSuffix("Storage") {
      guard TorchDType.storages[name] != nil else {
        throw PickleRefusal("holds a \(full), a complex or quantized storage, which luagan does not read")
      }
      return .global(module, name)
    }
    if module == "torch", TorchDType(rawValue: name) != nil { return .global(module, name) }
    if module == "torch._utils", name.hasPrefix("_rebuild_") {
      throw PickleRefusal("holds a tensor rebuilt by \(full) (sparse, quantized, meta or a subclass), which luagan does not read")
    }
    if module == "torch", TorchResolver.unreadDTypes.contains(where: name.hasPrefix) {
      throw PickleRefusal("holds a tensor of dtype \(full), which luagan does not read")
    }
    throw PickleRefusal("uses the global \(full), which a state dict never needs; refused")
  }

  /// torch's persistent ids: ("storage", storage type, key, location, numel) in the zip format,
  /// plus a view (view key, offset, size) or None in the legacy one.
  func persistent(_ id: PickleValue) throws -> PickleValue {
    guard let t = id.items, let kind = t.first?.text else { throw PickleRefusal("has a persistent id that is \(id.kind); refused") }
    if kind == "module" {
      throw PickleRefusal("holds a whole nn.Module (torch.save(model)), whose class would have to run; save its state_dict() instead")
    }
    guard kind == "storage", t.count == 5 || t.count == 6, case .global(let m, let n) = t[1], m.hasPrefix("torch"),
          let dtype = TorchDType.storages[n],
          let key = t[2].text ?? t[2].int.map(String.init), let numel = t[4].int, numel >= 0 else {
      throw PickleRefusal("has a persistent id that is not torch's ('storage', type, key, location, numel); refused")
    }
    let nbytes = try checked { try Checked.mul(numel, dtype.size, "storage '\(key)'") }
    let storage: TorchStorage
    if let s = byKey[key] {
      guard s.nbytes == nbytes else {
        throw PickleRefusal("declares storage '\(key)' as \(s.nbytes) and as \(nbytes) bytes; it is corrupt")
      }
      storage = s
    } else {
      storage = TorchStorage(key: key, dtype: dtype, numel: numel, nbytes: nbytes)
      byKey[key] = storage
      storages.append(storage)
    }
    guard t.count == 6, let view = t[5].items else { return .object(TorchStorageRef(storage, dtype: dtype, byteOffset: 0, nbytes: nbytes)) }
    // Legacy view metadata: (view key, offset, size) in elements of the storage's type.
    guard view.count == 3, let offset = view[1].int, let size = view[2].int, offset >= 0, size >= 0 else {
      throw PickleRefusal("has a storage view that is not (key, offset, size); it is corrupt")
    }
    let start = try checked { try Checked.mul(offset, dtype.size, "a view of storage '\(key)'") }
    let length = try checked { try Checked.mul(size, dtype.size, "a view of storage '\(key)'") }
    guard start <= nbytes, length <= nbytes - start else {
      throw PickleRefusal("has a view of \(size) elements at \(offset) of storage '\(key)', which holds \(numel); it is corrupt")
    }
    return .object(TorchStorageRef(storage, dtype: dtype, byteOffset: start, nbytes: length))
  }

  /// Checked arithmetic whose error reads as a refusal of the file.
  private func checked(_ body: () throws -> Int) throws -> Int {
    do { return try body() } catch let e as TensorError { throw PickleRefusal("declares a size that overflows (\(e.message)); refused") }
  }

  func call(_ callable: PickleValue, _ args: [PickleValue]) throws -> PickleValue {
    guard case .global(let module, let name) = callable else {
      throw PickleRefusal("calls \(callable.kind), which is not a function; refused")
    }
    let full = "\(module).\(name)"
    switch full {
    case "collections.OrderedDict":
      let d = arena.dict()
      if let pairs = args.first?.items {
        for p in pairs {
          guard let kv = p.items, kv.count == 2 else { throw PickleRefusal("builds an OrderedDict from \(p.kind), not pairs") }
          do { try d.set(kv[0], kv[1], arena: arena) } catch let e as TensorError { throw PickleRefusal("has \(e.message)") }
        }
      }
      return .dict(d)
    case "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2": return try rebuild(args, dtype: nil)
    case "torch._utils._rebuild_tensor_v3":
      guard args.count >= 7, case .global("torch", let n) = args[6], let dtype = TorchDType(rawValue: n) else {
        throw PickleRefusal("calls _rebuild_tensor_v3 without a dtype luagan reads")
      }
      return try rebuild(args, dtype: dtype)
    case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state", "torch.nn.parameter.Parameter":
      guard let data = args.first, case .object(let o) = data, o is TorchPendingTensor else {
        throw PickleRefusal("makes a Parameter of \(args.first?.kind ?? "nothing"), not a tensor; refused")
      }
      return data   // a Parameter's data; requires_grad, hooks and Python state are dropped
    case "torch._tensor._rebuild_from_type_v2":   // (rebuild function, type, its arguments, state)
      guard args.count == 4, case .global(let m, let n) = args[0], TorchResolver.rebuilders.contains("\(m).\(n)"),
            let inner = args[2].items else {
        throw PickleRefusal("calls _rebuild_from_type_v2 with other than a tensor rebuild; refused")
      }
      return try call(args[0], inner)
    default: return try callBuiltin(full, args)
    }
  }

  /// torch.Size, torch.device and the builtins that rebuild bytes and sets.
  private func callBuiltin(_ full: String, _ args: [PickleValue]) throws -> PickleValue {
    switch full {
    case "torch.Size", "builtins.set", "builtins.frozenset":
      guard args.count <= 1, let items = args.isEmpty ? [] : args[0].items else {
        throw PickleRefusal("calls \(full) on \(args.count) values")
      }
      return full == "torch.Size" ? .tuple(arena.list(items)) : .list(arena.list(items))
    case "torch.device":
      guard let type = args.first?.text else { throw PickleRefusal("calls torch.device without a device name") }
      return .string(args.count > 1 && args[1].int != nil ? "\(type):\(args[1].int!)" : type)
    case "_codecs.encode":   // how protocol 2 pickles bytes: _codecs.encode(text, "latin1")
      guard args.count == 2, let text = args[0].text, let encoding = args[1].text else { throw PickleRefusal("calls _codecs.encode oddly") }
      if ["utf-8", "utf8"].contains(encoding.lowercased()) { return .bytes(Array(text.utf8)) }
      guard ["latin1", "latin-1", "iso-8859-1"].contains(encoding.lowercased()), text.unicodeScalars.allSatisfy({ $0.value < 256 }) else {
        throw PickleRefusal("calls _codecs.encode with the encoding '\(encoding.prefix(20))'")
      }
      return .bytes(text.unicodeScalars.map { UInt8($0.value) })
    case "builtins.bytearray":
      if args.isEmpty { return .bytes([]) }
      guard case .bytes(let b) = args[0] else { throw PickleRefusal("calls bytearray on \(args[0].kind)") }
      return .bytes(b)
    default:
      throw PickleRefusal("calls \(full), which a state dict never calls; refused")
    }
  }

  /// `_rebuild_tensor(_v2/_v3)(storage, storage_offset, size, stride, ...)`: checked against the
  /// storage's declared size here, before any byte is read.
  private func rebuild(_ args: [PickleValue], dtype: TorchDType?) throws -> PickleValue {
    guard args.count >= 4, case .object(let o) = args[0], let ref = o as? TorchStorageRef else {
      throw PickleRefusal("rebuilds a tensor from \(args.first?.kind ?? "nothing"), not a storage; refused")
    }
    guard let offset = args[1].int, let sizeItems = args[2].items, let strideItems = args[3].items,
          sizeItems.count == strideItems.count, sizeItems.count <= 64 else {
      throw PickleRefusal("rebuilds a tensor without an offset, a size and a stride of the same length; it is corrupt")
    }
    let size = sizeItems.compactMap(\.int), stride = strideItems.compactMap(\.int)
    let dtype = dtype ?? ref.dtype
    guard size.count == sizeItems.count, stride.count == strideItems.count, offset >= 0,
          size.allSatisfy({ $0 >= 0 }), stride.allSatisfy({ $0 >= 0 }) else {
      throw PickleRefusal("rebuilds a tensor with a negative or non-integer offset, size or stride; it is corrupt")
    }
    let numel = try checked { try Checked.product(size, "a tensor of size \(formatShape(size))") }
    var span = 0
    if numel > 0 {
      var last = offset
      for d in 0..<size.count {
        last = try checked { try Checked.add(last, try Checked.mul(size[d] - 1, stride[d], "a stride"), "a tensor's extent") }
      }
      let end = try checked { try Checked.mul(try Checked.add(last, 1, "a tensor's extent"), dtype.size, "a tensor's extent") }
      guard end <= ref.nbytes else {
        throw PickleRefusal("has a tensor of size \(formatShape(size)), stride \(formatShape(stride)) and offset \(offset) that "
                            + "needs \(last + 1) \(dtype.rawValue) elements of storage '\(ref.storage.key)', which holds "
                            + "\(ref.nbytes / dtype.size); it is corrupt")
      }
      span = last - offset + 1
    }
    let t = TorchPendingTensor(ref: ref, dtype: dtype, offset: offset, size: size, stride: stride, numel: numel, span: span)
    ref.storage.tensors.append(t)
    return .object(t)
  }

  /// BUILD: an OrderedDict's attributes (a state dict's `_metadata`) and a tensor's Python state
  /// are dropped; nothing else may be built.
  func build(_ object: PickleValue, _ state: PickleValue) throws -> PickleValue {
    switch object {
    case .dict: return object
    case .object(let o) where o is TorchPendingTensor: return object
    default: throw PickleRefusal("sets the state of \(object.kind), which a state dict never needs; refused")
    }
  }

  /// Before any storage is read: the tensors' total size must be one this machine can hold (a
  /// stride-0 tensor of a tiny storage may claim terabytes).
  func checkMemory() throws {
    var total = 0
    for s in storages {
      for t in s.tensors {
        let bytes = t.elementsHeld.multipliedReportingOverflow(by: t.dtype.outputsFloat32 ? 4 : 8)
        let sum = total.addingReportingOverflow(bytes.partialValue)
        guard !bytes.overflow, !sum.overflow else {
          throw TensorError("\(label) declares tensors of more bytes than an Int counts; refused")
        }
        total = sum.partialValue
      }
    }
    let declared = "\(label) declares \(Storage.humanBytes(total)) of tensors"
    guard total <= MemoryAccounting.maxAllocationBytes else { throw TensorError("\(declared), more than this machine's memory; refused") }
    if let limit = MemoryAccounting.limitBytes, total > limit {
      throw TensorError("\(declared), more than the limit of \(Storage.humanBytes(limit)) (tensor.setMemoryLimit); refused")
    }
    if let room = MemoryAccounting.headroom(), total > room.bytes {
      throw TensorError("\(declared), but only \(Storage.humanBytes(room.bytes)) is left under \(room.limit)")
    }
  }

  /// Makes every tensor of `storage` from its bytes (the storage's whole record).
  func materialize(_ storage: TorchStorage, _ bytes: UnsafeRawBufferPointer, bigEndian: Bool) throws {
    guard bytes.count == storage.nbytes else { throw TensorError("\(label): storage '\(storage.key)' has the wrong size") }
    for t in storage.tensors {
      guard t.ref.byteOffset <= bytes.count, t.ref.nbytes <= bytes.count - t.ref.byteOffset else {
        throw TensorError("\(label): a view of storage '\(storage.key)' runs past its end")
      }
      t.tensor = try TorchResolver.tensor(t, bytes, bigEndian: bigEndian)
    }
  }

  /// The elements `t` selects (offset + Σ index·stride), in row-major order, converted.
  static func tensor(_ t: TorchPendingTensor, _ bytes: UnsafeRawBufferPointer, bigEndian: Bool) throws -> Tensor {
    guard t.numel > 0, bytes.baseAddress != nil else {
      return try Tensor.zeros(t.size, dtype: t.dtype.outputsFloat32 ? .float32 : .float64)
    }
    if t.staysView {
      // its span, read as a 1-D tensor, then the view
      let flat = TorchPendingTensor(ref: t.ref, dtype: t.dtype, offset: t.offset, size: [t.span], stride: [1], numel: t.span, span: t.span)
      return try Tensor.strided(over: try converted(flat, bytes, bigEndian: bigEndian), shape: t.size, strides: t.stride, offset: 0)
    }
    return try converted(t, bytes, bigEndian: bigEndian)
  }

  /// The elements `t` selects, gathered into a new contiguous tensor and converted.
  static func converted(_ t: TorchPendingTensor, _ bytes: UnsafeRawBufferPointer, bigEndian: Bool) throws -> Tensor {
    let start = bytes.baseAddress!
    let base = UnsafeRawPointer(start + t.ref.byteOffset)
    func u16(_ p: UnsafeRawPointer) -> UInt16 { let v = p.loadUnaligned(as: UInt16.self); return bigEndian ? v.byteSwapped : v }
    func u32(_ p: UnsafeRawPointer) -> UInt32 { let v = p.loadUnaligned(as: UInt32.self); return bigEndian ? v.byteSwapped : v }
    func u64(_ p: UnsafeRawPointer) -> UInt64 { let v = p.loadUnaligned(as: UInt64.self); return bigEndian ? v.byteSwapped : v }
    if t.dtype.outputsFloat32 {
      return try Tensor.filled(t.size) { out in
        switch t.dtype {
        case .float16: gather(t, base, out.baseAddress!) { Float(Float16(bitPattern: u16($0))) }
        case .bfloat16: gather(t, base, out.baseAddress!) { Float(bitPattern: UInt32(u16($0)) << 16) }
        default: gather(t, base, out.baseAddress!) { Float(bitPattern: u32($0)) }
        }
      }
    }
    let result = try Tensor.empty(t.size, dtype: .float64)
    try result.withUnsafeMutableBytes { buffer in
      let out = buffer.bindMemory(to: Double.self).baseAddress!
      switch t.dtype {
      case .float64: gather(t, base, out) { Double(bitPattern: u64($0)) }
      case .int64: gather(t, base, out) { Double(Int64(bitPattern: u64($0))) }
      case .uint64: gather(t, base, out) { Double(u64($0)) }
      case .int32: gather(t, base, out) { Double(Int32(bitPattern: u32($0))) }
      case .uint32: gather(t, base, out) { Double(u32($0)) }
      case .int16: gather(t, base, out) { Double(Int16(bitPattern: u16($0))) }
      case .uint16: gather(t, base, out) { Double(u16($0)) }
      case .int8: gather(t, base, out) { Double(Int8(bitPattern: $0.load(as: UInt8.self))) }
      case .bool: gather(t, base, out) { $0.load(as: UInt8.self) != 0 ? 1 : 0 }
      default: gather(t, base, out) { Double($0.load(as: UInt8.self)) }
      }
    }
    return result
  }

  /// Walks `t`'s index space in row-major order (an odometer over the outer dimensions, a run
  /// along the last), reading element offset + Σ index·stride of `base`.
  static func gather<T>(_ t: TorchPendingTensor, _ base: UnsafeRawPointer, _ out: UnsafeMutablePointer<T>,
                        _ read: (UnsafeRawPointer) -> T) {
    let e = t.dtype.size, rank = t.size.count
    guard rank > 0 else { out[0] = read(base + t.offset * e); return }
    // A dimension of size 1 never moves: its stride (which may be anything) is not used.
    let stride = (0..<rank).map { t.size[$0] == 1 ? 0 : t.stride[$0] }
    let inner = t.size[rank - 1], innerStride = stride[rank - 1] * e
    var index = [Int](repeating: 0, count: rank)
    var position = t.offset, i = 0
    while i < t.numel {
      var p = base + position * e
      for k in 0..<inner { out[i + k] = read(p); p += innerStride }
      i += inner
      var d = rank - 2
      while d >= 0 {
        index[d] += 1
        position += stride[d]
        if index[d] < t.size[d] { break }
        position -= stride[d] * t.size[d]
        index[d] = 0
        d -= 1
      }
    }
  }
}
