// Host's types (TensorError, Checked, JSON, Memory, the machine, the file helpers) are part of
// what a module importing Tensor sees, as they were before they had a room of their own.
@_exported import Host
