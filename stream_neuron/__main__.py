"""``python -m stream_neuron``: the ``stream-neuron`` command."""

from stream_neuron.launch import main

if __name__ == "__main__":
    main()
