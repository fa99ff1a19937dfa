"""Action classes of the real datasets, in label order."""

# NTU RGB+D 120 two-person classes; labels 0..25 follow the codes below (ReGenNet's split_2p order).
NTU26_CODES = tuple([f'A{i:03d}' for i in range(50, 61)] + [f'A{i:03d}' for i in range(106, 121)])
NTU26_NAMES = ('punching or slapping other person', 'kicking other person', 'pushing other person',
               'pat on back of other person', 'point finger at the other person',
               'hugging other person', 'giving something to other person',
               "touch other person's pocket", 'handshaking', 'walking towards each other',
               'walking apart from each other', 'hit other person with something',
               'wield knife towards other person', 'knock over other person (hit with body)',
               "grab other person's stuff", 'shoot at other person with a gun', 'step on foot',
               'high-five', 'cheers and drink', 'carry something with other person',
               'take a photo of other person', 'follow other person',
               "whisper in other person's ear", 'exchange things with other person',
               'support somebody with hand', 'finger-guessing game (playing rock-paper-scissors)',
              )
# The 53 NTU120 cross-subject training performers (P field).
NTU120_XSUB_TRAIN_SUBJECTS = frozenset(
    (1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38, 45, 46, 47, 49, 50,
     52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91, 92, 93, 94, 95,
     97, 98, 100, 103))

CHI3D_NAMES = ('Grab', 'Handshake', 'Hit', 'HoldingHands', 'Hug', 'Kick', 'Posing', 'Push')

INTERHUMAN_NAMES = ('interaction',)  # InterHuman is described by text, not labels
